"""Sync and async, both ways, without touching the caller's event loop.

- `call(fn, ...)`: await a function that may be plain or async; plain ones run in a
  worker thread so they never block the loop.
- `Portal`: an event loop of fido's own, in a daemon thread. `Pipeline.process` submits its
  work there and waits, which works the same from a plain script and from inside a running
  loop (Jupyter): no `nest_asyncio`, no `run_until_complete` on someone else's loop.
- `run_sync(factory)`: run a coroutine to completion from sync code, on a fresh loop
  (in a fresh thread if this thread already runs one).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import inspect
import threading
import time
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

__all__ = [
    "Escaped",
    "NoWorker",
    "Portal",
    "Workers",
    "call",
    "describe",
    "guarded",
    "maybe_await",
    "run_sync",
]

T = TypeVar("T")
_ABANDONED: Final = object()


class Escaped(Exception):
    """An adapter raised a `BaseException`: an ordinary failure, which must not stop fido.

    `SystemExit`, `KeyboardInterrupt` or its own `CancelledError` from an adapter is that
    adapter's failure, not a request to stop fido's loop.

    Args:
        error: What it raised.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.kind = type(error).__name__


class NoWorker(Exception):
    """A plain adapter method was not called: no worker thread was free for it in time.

    The method never ran, so calling it again later is safe.
    """


def describe(exc: BaseException) -> str:
    """What to record of an exception that is not a fido error: its type, not its message.

    Adapters put their credentials nowhere but in their errors' messages... by accident:
    a library's exception may quote a URL with its token, or a header. Only the adapter's
    own `AdapterError`s are recorded with their message (they are written not to hold a
    secret); of any other exception the incident keeps the type.
    """
    kind = exc.kind if isinstance(exc, Escaped) else type(exc).__name__
    return f"{kind} (its message is not kept: it may hold a secret)"


async def maybe_await(value: T | Awaitable[T]) -> T:
    """`value`, awaited if it is awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


class Workers:
    """A thread pool for plain adapter methods, which no single adapter can take over.

    An adapter holds at most `share` threads (half the pool) at once, counting calls that
    timed out but still run (a thread cannot be stopped): its further calls wait for one
    of its own to end, and a hung adapter cannot starve the others. Used from one event
    loop.

    Args:
        size: Threads in the pool.
        name: The threads' name prefix.
    """

    def __init__(self, size: int, name: str) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(size, thread_name_prefix=name)
        self.size = size
        self.share = max(1, size // 2)
        self._shares: dict[str, asyncio.Semaphore] = {}

    def share_of(self, owner: str) -> asyncio.Semaphore:
        """The threads `owner` may still take (a semaphore of the running loop)."""
        found = self._shares.get(owner)
        if found is None:
            found = self._shares[owner] = asyncio.Semaphore(self.share)
        return found

    def shutdown(self) -> None:
        """Stop taking work; threads still running finish on their own."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callables with async __call__
    )


async def guarded(awaitable: Awaitable[Any]) -> Any:
    """Await what an adapter returned; its own BaseExceptions become `Escaped`."""
    try:
        return await awaitable
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # we are being cancelled (a timeout, a shutdown): not the adapter's doing
        raise Escaped(exc) from None
    except (KeyboardInterrupt, SystemExit) as exc:
        raise Escaped(exc) from None


async def _in_thread(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    timeout: float | None,
    executor: concurrent.futures.Executor | Workers | None,
    owner: str | None,
) -> Any:
    loop = asyncio.get_running_loop()
    waited = time.monotonic()
    workers = executor if isinstance(executor, Workers) else None
    pool = workers.executor if workers is not None else executor
    assert not isinstance(pool, Workers)  # noqa: S101 - for the type checker
    share = None if workers is None or owner is None else workers.share_of(owner)
    if share is not None:
        try:
            await asyncio.wait_for(share.acquire(), timeout)
        except TimeoutError:
            raise NoWorker(
                f"no worker thread within {timeout:g} s: earlier calls of this adapter"
                " still hold its share of the threads"
            ) from None
    started = loop.create_future()
    gate = threading.Lock()
    state = [False, False]  # started, abandoned
    context = contextvars.copy_context()

    def begin(at: float) -> None:
        if not started.done():
            started.set_result(at)

    def work() -> Any:
        try:
            with gate:
                if state[1]:
                    return _ABANDONED
                state[0] = True
            loop.call_soon_threadsafe(begin, time.monotonic())
            try:
                return context.run(fn, *args)
            except BaseException as exc:  # SystemExit in a thread must not reach the loop
                if isinstance(exc, Exception):
                    raise
                raise Escaped(exc) from None
        finally:
            if share is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: no matter
                    loop.call_soon_threadsafe(share.release)

    try:
        result = loop.run_in_executor(pool, work)
    except RuntimeError:  # the pool is shut down
        if share is not None:
            share.release()
        raise
    if timeout is None:
        value = await result
        return await guarded(value) if inspect.isawaitable(value) else value
    try:
        # The clock starts when a thread takes the call: waiting for one (and for the
        # adapter's share) has a budget of its own, as long again.
        left = max(0.0, timeout - (time.monotonic() - waited))
        await asyncio.wait_for(asyncio.shield(started), left)
    except TimeoutError:
        with gate:
            abandoned = state[1] = not state[0]
        if abandoned:
            result.add_done_callback(_consume)
            raise NoWorker(f"no worker thread was free within {timeout:g} s") from None
    begun = started.result() if started.done() else time.monotonic()
    remaining = max(0.0, timeout - (time.monotonic() - begun))
    try:
        value = await asyncio.wait_for(asyncio.shield(result), remaining)
    except TimeoutError:
        result.add_done_callback(_consume)
        raise
    if not inspect.isawaitable(value):
        return value
    remaining = max(0.0, timeout - (time.monotonic() - begun))
    return await asyncio.wait_for(guarded(value), remaining)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a call nobody waits for any more (no "never retrieved")."""
    if not future.cancelled():
        future.exception()


async def call(
    fn: Callable[..., Any],
    *args: Any,
    timeout: float | None = None,
    executor: concurrent.futures.Executor | Workers | None = None,
    owner: str | None = None,
) -> Any:
    """Call `fn(*args)` whether it is plain or async, within `timeout` seconds.

    Coroutine functions are awaited on this loop; plain functions run in `executor` (a
    `Workers` pool, a plain executor, or the loop's default one), and an awaitable they
    return is awaited too. For a plain function the clock starts when a thread takes the
    call: it waits as long again for a free thread, then gives up with `NoWorker` (the
    function never ran). On timeout a plain function's thread keeps running to its end
    (threads cannot be cancelled), but nobody waits for it. `owner` (the adapter's name)
    counts the threads it holds in a `Workers` pool.

    What the function raises is raised, except `BaseException`s that are not ours
    (`SystemExit`, `KeyboardInterrupt`, an adapter's own `CancelledError`): those become
    `Escaped`, an ordinary exception, so that an adapter cannot stop fido's loop.

    Raises:
        TimeoutError: `fn` did not finish in time.
        NoWorker: No worker thread took the call in time (or `owner` holds its share).
    """
    if _is_async(fn):
        if timeout is None:
            return await guarded(fn(*args))
        return await asyncio.wait_for(guarded(fn(*args)), timeout)
    return await _in_thread(fn, args, timeout, executor, owner)


class Portal:
    """An event loop running in a daemon thread, started on first use.

    Args:
        name: The thread's name.
    """

    def __init__(self, name: str = "fido-portal") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._death: BaseException | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's loop (started if needed).

        Raises:
            RuntimeError: The loop's thread died (something raised through the loop).
        """
        with self._lock:
            if self._thread is not None and not self._thread.is_alive():
                raise self._dead()
            if self._loop is None or self._loop.is_closed():
                started = threading.Event()
                loop = asyncio.new_event_loop()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    try:
                        loop.run_forever()
                    except BaseException as exc:  # kept, and reported by run()
                        self._death = exc

                thread = threading.Thread(target=serve, name=self._name, daemon=True)
                thread.start()
                started.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def _dead(self) -> RuntimeError:
        cause = "" if self._death is None else f" ({type(self._death).__name__})"
        return RuntimeError(f"fido's event loop thread died{cause}; make a new Pipeline")

    def in_portal(self) -> bool:
        """Whether the calling thread is the portal's own."""
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the portal's loop."""
        try:
            loop = self.loop
        except RuntimeError:
            coroutine.close()
            raise
        return asyncio.run_coroutine_threadsafe(coroutine, loop)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the portal's loop and wait for its result.

        Call it from any thread but the portal's own.

        Raises:
            RuntimeError: Called from the portal's thread (it would wait for itself), or
                the loop's thread died meanwhile.
        """
        if self.in_portal():
            coroutine.close()
            raise RuntimeError("a blocking call from fido's own event loop; await the async twin")
        future = self.submit(coroutine)
        thread = self._thread
        while True:
            try:
                return future.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                if thread is not None and not thread.is_alive():
                    future.cancel()
                    coroutine.close()  # its loop is gone: it will never run on
                    raise self._dead() from None

    async def arun(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the portal's loop from another loop, and await its result.

        The work is shielded from the caller: cancelling the caller (`asyncio.wait_for`
        around it) stops the waiting, not the work, which finishes on fido's loop.
        """
        inner: asyncio.Future[T]
        if self.in_portal():
            inner = asyncio.ensure_future(coroutine)
        else:
            inner = asyncio.wrap_future(self.submit(coroutine))
        inner.add_done_callback(_consume)
        return await asyncio.shield(inner)

    def close(self) -> None:
        """Stop the loop and its thread (what is still scheduled is cancelled)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            loop.call_soon(loop.stop)
            return
        if not thread.is_alive():
            loop.close()
            return

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.shutdown_asyncgens()
            await loop.shutdown_default_executor()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine `factory()` makes to completion, from sync code.

    On a fresh loop in this thread, or in a fresh thread when this thread already runs a
    loop (a notebook).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fido-sync") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
