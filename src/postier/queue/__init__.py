"""The mail queue: queue IDs, queue files and the queue directory layout.

Parameters read: queue_directory.
"""

QUEUE_NAMES = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt",
               "bounce", "defer", "trace")
