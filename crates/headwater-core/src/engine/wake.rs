//! A wake-up flag a run loop can wait on, set from any task (capture, shutdown).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures::task::AtomicWaker;

/// Coalescing wake-ups: any number of `notify` calls before a `wait` give one wake-up.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    flag: AtomicBool,
    waker: AtomicWaker,
}

impl Wake {
    pub(crate) fn notify(&self) {
        self.flag.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Consumes a pending wake-up, if any.
    pub(crate) fn take(&self) -> bool {
        self.flag.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn wait(&self) -> impl Future<Output = ()> + '_ {
        futures::future::poll_fn(move |cx| {
            self.waker.register(cx.waker());
            if self.take() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}
