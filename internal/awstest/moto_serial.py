"""Runs moto_server with one request handled at a time.

moto answers each request on its own thread and takes no lock around the
check-then-set steps that AWS makes atomic: a conditional PutItem reads
the item, evaluates the condition and stores the new item as three steps
(moto/dynamodb/models/table.py, Table.put_item), and a ReceiveMessage
checks that a message is visible and then marks it received
(moto/sqs/models.py, SQSBackend.receive_message). Two concurrent requests
can both pass one condition, or both receive one message inside its
visibility timeout. DynamoDB never does the first; SQS does the second
rarely, and moto did it once in 400 receives with 8 concurrent receivers.

Here a lock is held while a request is handled. It is let go while a
ReceiveMessage long poll waits for messages, so a waiting receive does
not hold up the rest. It is first come, first served: threading.Lock
wakes an arbitrary waiter, so under load one request could wait behind
many that came after it, longer than any service would keep it. moto's
Python code runs under the GIL anyway, so the lock costs little
throughput.

Usage: python3 moto_serial.py [moto_server options]
"""

import collections
import sys
import threading

from moto.moto_server import werkzeug_app
from moto.server import main
from moto.sqs import models as sqs_models


class _FairLock:
    """A lock handed to its waiters in the order they came."""

    def __init__(self):
        self._mu = threading.Lock()
        self._held = False
        self._waiters = collections.deque()

    def acquire(self):
        with self._mu:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()  # released by the holder, which hands the lock over

    def release(self):
        with self._mu:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._held = False

    def __enter__(self):
        self.acquire()

    def __exit__(self, *exc):
        self.release()


_lock = _FairLock()
_handle = werkzeug_app.DomainDispatcherApplication.__call__
_wait = sqs_models.Queue.wait_for_messages


def _serialized(self, environ, start_response):
    with _lock:
        return _handle(self, environ, start_response)


def _wait_unlocked(self, timeout):
    _lock.release()
    try:
        _wait(self, timeout)
    finally:
        _lock.acquire()


werkzeug_app.DomainDispatcherApplication.__call__ = _serialized
sqs_models.Queue.wait_for_messages = _wait_unlocked

if __name__ == "__main__":
    main(sys.argv[1:])
