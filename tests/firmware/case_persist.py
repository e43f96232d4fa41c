from insitu_node import persist
from insitu_node.hal.storage import MemStorage


def test_pack_unpack_and_corruption():
    data = persist.pack({"k": [1.5, 2.5]})
    assert persist.unpack(data) == {"k": [1.5, 2.5]}
    bad = data[:-3] + b"9" + data[-2:]
    assert persist.unpack(bad) is None
    assert persist.unpack(b"") is None and persist.unpack(None) is None
    assert persist.unpack(data[:12]) is None


def test_save_keeps_backup_and_falls_back():
    st = MemStorage()
    assert persist.load(st) == (None, "new")
    persist.save(st, {"a": 1})
    persist.save(st, {"a": 2})
    assert persist.load(st) == ({"a": 2}, "ok")
    st.files[persist.MAIN] = st.files[persist.MAIN][:-2]  # torn write
    assert persist.load(st) == ({"a": 1}, "backup")
    persist.save(st, {"a": 3})  # a corrupt main is not promoted to backup
    assert persist.unpack(st.files[persist.BACKUP]) == {"a": 1}
    st.files[persist.MAIN] = b"junk"
    st.files[persist.BACKUP] = b"junk"
    assert persist.load(st) == (None, "defaults")


def test_boot_counter():
    st = MemStorage()
    assert persist.bump_boots(st) == 1 and persist.bump_boots(st) == 2
    st.files[persist.BOOTS] = b"garbage"
    assert persist.bump_boots(st) == 1
