"""The local journal: what a gateway has in flight and what it has not yet written, on disk.

A kill -9 loses a process's memory, not what it appended to a file. So before each upstream
call the gateway appends what the request is and what it reserved (a *start*), and before
each response ends the call's ledger row (a *row*), or that it went upstream after all
(an *end*). The ledger writer still writes rows to the database in batches; the journal only
has to hold them until then. At start (and every few seconds, for gateways sharing the
folder) a journal whose process is gone is recovered: its rows are written, and each call
it started but never finished is recorded as such — charged at its reserved worst case,
flagged `usage_unseen` — never silently released.

A journal segment is a file its process holds an exclusive lock on (flock), so a live
gateway's journal is never taken for a dead one's; the kernel drops the lock when the process
dies. Appends go to the page cache, not to the disk: they survive the process, not the
machine (a power cut or kernel crash can still lose the last seconds).

Imports: core, config, storage, limits (windows). Nothing below the gateway imports it.

May import: the package root, wire/, storage/ and limits/.
"""
from tokenbrake.journal.recover import recover_folder
from tokenbrake.journal.segments import Journal

__all__ = ["Journal", "recover_folder"]
