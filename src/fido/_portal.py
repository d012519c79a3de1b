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
import contextvars
import functools
import inspect
import threading
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

__all__ = ["Portal", "call", "maybe_await", "run_sync"]

T = TypeVar("T")


async def maybe_await(value: T | Awaitable[T]) -> T:
    """`value`, awaited if it is awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


async def call(
    fn: Callable[..., Any],
    *args: Any,
    timeout: float | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> Any:
    """Call `fn(*args)` whether it is plain or async, within `timeout` seconds.

    Coroutine functions are awaited on this loop; plain functions run in `executor` (or
    the loop's default executor), and an awaitable they return is awaited too. On timeout
    a plain function's thread keeps running to its end (threads cannot be cancelled), but
    nobody waits for it.

    Raises:
        TimeoutError: `fn` did not finish in time.
    """

    async def invoke() -> Any:
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - callables with async __call__
        ):
            return await fn(*args)
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        result = await loop.run_in_executor(executor, functools.partial(context.run, fn, *args))
        return await maybe_await(result)

    if timeout is None:
        return await invoke()
    return await asyncio.wait_for(invoke(), timeout)


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

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's loop (started if needed)."""
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                started = threading.Event()
                loop = asyncio.new_event_loop()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                thread = threading.Thread(target=serve, name=self._name, daemon=True)
                thread.start()
                started.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def in_portal(self) -> bool:
        """Whether the calling thread is the portal's own."""
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the portal's loop."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the portal's loop and wait for its result.

        Call it from any thread but the portal's own.

        Raises:
            RuntimeError: Called from the portal's thread (it would wait for itself).
        """
        if self.in_portal():
            coroutine.close()
            raise RuntimeError("a blocking call from fido's own event loop; await the async twin")
        return self.submit(coroutine).result()

    async def arun(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the portal's loop from another loop, and await its result."""
        if self.in_portal():
            return await coroutine
        return await asyncio.wrap_future(self.submit(coroutine))

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
