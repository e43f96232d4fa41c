"""The asyncio application around the node core: control task, command task, supervisor."""
