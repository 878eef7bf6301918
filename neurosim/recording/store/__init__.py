"""Recording a run into one Zarr store through xarray.

Layout of a store (``xr.open_zarr(path)`` gives the root Dataset):

* root variables appended per checkpoint along ``epoch`` (errors, loss,
  optional weight snapshots) and, for trajectories, along ``step``;
  every variable carries ``long_name``/``units``/``description`` attrs;
* root attrs: the resolved protocol (JSON), seed, versions, backend, status,
  and ``neurosim_commit`` — the commit record (a JSON string, as every attr is a
  netCDF value);
* groups ``checkpoint_a`` / ``checkpoint_b``: the two slots of a
  double-buffered checkpoint (weights, optimizer and rule state).  A finished
  run keeps only the committed slot (enough to extend it with ``--resume``).

Crash safety (a SIGKILL at any moment leaves a store that opens and resumes).

* Every key (chunk, array metadata) is written atomically by Zarr (temporary
  file + rename), so a file is either the old or the new version.
* Readers see the *consolidated* metadata in the root ``zarr.json``: the
  shapes and names of every array as of the last commit.  Records appended
  since (longer arrays, new arrays) are on disk but invisible.  Appended
  dimensions use chunks of length 1, so an append never rewrites a chunk
  of a committed record.
* The root ``zarr.json`` is written only by this package, always in one
  atomic write (temporary file next to the store + ``os.replace``): a
  commit replaces the commit record *and* the consolidated metadata at once.
  Libraries writing through :class:`SafeStore` (xarray's appends, Zarr
  group creation) cannot touch it.
* A checkpoint is written into the slot that is *not* committed, then the
  root is replaced.  A kill before that replace leaves the previous commit
  (record, slot, visible records) intact; after it, the new one.
* A store is created beside its destination (``.NAME.<id>.creating``, root
  metadata included) and renamed into place, so whatever is found at the
  destination has its root metadata.  A store being replaced is renamed
  aside first (``.NAME.<id>.deleting``) and deleted after.  The next writer
  (holding the lock) removes what a kill leaves of either.
* :meth:`Recorder.repair` (run on resume) cuts arrays back to their
  committed shapes and removes arrays created after the last commit and
  leftover temporary files.
* One writer at a time: :class:`~neurosim.recording.store.lock.StoreLock` holds an
  exclusive ``flock`` on the store directory itself (nothing beside the store is
  created, written or deleted for it); the kernel releases it when the process
  dies, so a killed run never blocks its resume.

Integrity (stores of format 3; see :mod:`neurosim.recording.store.seal`).

* Every array is compressed with Zstandard frame checksums, and every chunk is
  written (also one equal to the fill value), so a chunk that is damaged,
  truncated or deleted is found when it is read.
* The commit record holds a content hash (BLAKE2b, 128 bit, over dtype, shape
  and bytes) of every array of the committed checkpoint and a hash chain over the
  rows of every committed record array; the root metadata (every attr, the commit
  record, the consolidated metadata) carries a seal.
* A store holds only what neurosim writes: a link or special file inside it is
  refused before anything is read (:mod:`neurosim.recording.store.layout`).
* :func:`verify_store` checks a store against its last commit (metadata of
  every committed array, every committed chunk, the checkpoint hashes);
  :func:`prepare_store` runs it before a resume writes anything, and
  ``neurosim inspect`` reports it.  Damage is a :class:`StoreError` naming the
  file (and for a checkpoint the array and slot); an older slot is never used
  in place of a damaged one.

What may be deleted: only a neurosim run store (root metadata with the
commit record) that holds nothing neurosim did not write, or an empty directory
(:func:`prepare_store`).

The rooms of this package, each with one job (lower ones first; none imports a higher one):
``format`` (names, format number, codecs, content hash, versions), ``errors``, ``faults``
(the crash tests' hook), ``seal`` (seal and record chains), ``lock`` (the writer lock),
``layout`` (what may be inside a store), ``root`` (the root metadata and commit record),
``adapters`` (the Zarr stores libraries write through), ``lifecycle`` (create, replace,
debris), ``arrays`` (committed arrays read back, checked), ``commit`` (checkpoint, commit,
load, repair), ``writer`` (:class:`Recorder`), ``verify`` (:func:`verify_store`) and
``prepare`` (:func:`prepare_store`).
"""

from .errors import StoreError, StoreWriteError
from .format import FORMAT, MARKER, ROOT, SLOTS, content_hash, versions
from .layout import store_sizes
from .lock import StoreLock, real_path
from .prepare import prepare_store
from .root import commit_record, is_run_store, open_store, read_root
from .verify import verify_store
from .writer import Recorder

__all__ = [
    "FORMAT", "MARKER", "ROOT", "SLOTS", "Recorder", "StoreError", "StoreLock", "StoreWriteError",
    "commit_record", "content_hash", "is_run_store", "open_store", "prepare_store", "read_root",
    "real_path", "store_sizes", "verify_store", "versions",
]
