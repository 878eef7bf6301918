"""The Zarr stores that libraries write a run store through: nothing but the recorder
rewrites the root metadata (the commit point), and a failed write is a
:class:`~neurosim.recording.store.errors.StoreWriteError`."""

from __future__ import annotations

from zarr.storage import LocalStore

from . import faults
from .errors import StoreError, write_error
from .format import ROOT


class SafeStore(LocalStore):
    """A Zarr ``LocalStore`` through which nothing but :class:`Recorder` may
    rewrite the root metadata (the commit point): writes of the root
    ``zarr.json`` by libraries (xarray stores the root attrs on every append,
    Zarr rewrites parent groups) are dropped.  A failed write raises
    :class:`StoreWriteError`."""

    def _root_write(self) -> bool:
        """True: drop the write silently."""
        return True

    async def set(self, key: str, value) -> None:
        await self._write(key, value, super().set)

    async def set_if_not_exists(self, key: str, value) -> None:
        await self._write(key, value, super().set_if_not_exists)

    async def _write(self, key: str, value, write) -> None:
        """``write(key, value)`` (one of LocalStore's), the root's as :meth:`_root_write`
        decides, an OSError as the store's one-line write error."""
        if key == ROOT and self._root_write():
            return
        try:
            faults.fault_point(self.root / key)
            await write(key, value)
        except OSError as exc:
            raise write_error(exc, self.root) from None

    async def delete(self, key: str) -> None:
        if key == ROOT:
            raise StoreError("refusing to delete the root metadata of a run store")
        try:
            faults.fault_point()
            await super().delete(key)
        except OSError as exc:
            raise write_error(exc, self.root, "delete") from None

    async def delete_dir(self, prefix: str) -> None:
        try:
            faults.fault_point()
            await super().delete_dir(prefix)
        except OSError as exc:
            raise write_error(exc, self.root, "delete") from None


class GuardedStore(SafeStore):
    """What :meth:`Recorder.open_group` hands out: root writes raise instead
    (they would bypass the commit protocol); use :meth:`Recorder.set_attrs`."""

    def _root_write(self) -> bool:
        raise StoreError("the root metadata of a run store is written only by Recorder "
                         "(use Recorder.set_attrs for attrs; records become visible at a commit)")
