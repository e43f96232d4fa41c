"""Storage: a flat namespace of small files. FileStorage uses the board's filesystem
(littlefs renames atomically); MemStorage keeps bytes in a dict (emulator, tests)."""

import os


class FileStorage:
    def __init__(self, root=""):
        self._root = root

    def _p(self, name):
        return self._root + "/" + name if self._root else name

    def read(self, name):
        try:
            with open(self._p(name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def write(self, name, data):
        with open(self._p(name), "wb") as f:
            f.write(data)

    def rename(self, a, b):
        os.rename(self._p(a), self._p(b))

    def remove(self, name):
        try:
            os.remove(self._p(name))
        except OSError:
            pass


class MemStorage:
    def __init__(self):
        self.files = {}

    def read(self, name):
        return self.files.get(name)

    def write(self, name, data):
        self.files[name] = bytes(data)

    def rename(self, a, b):
        if a not in self.files:
            raise OSError(2)
        self.files[b] = self.files.pop(a)

    def remove(self, name):
        self.files.pop(name, None)
