//! The contract between the engine and a view.

use crate::event::Event;
use crate::state::State;

/// How a view wants its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewKind {
    /// The view's result does not depend on the order events are applied in (CRDTs,
    /// last-writer-wins maps). It gets events in arrival order and never rewinds.
    Commutative,
    /// The view's result depends on the order: it gets events in the thread's total order,
    /// and when a late event sorts before events it already applied, the events after it
    /// are undone (from undo records of the rows they changed), the late event applies,
    /// and they apply again.
    Ordered,
}

/// What an operation does, for access control: a [`Gate`] asks for the write role for
/// [`Access::Write`] and the delete role for [`Access::Delete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Creates or changes data.
    Write,
    /// Removes data.
    Delete,
}

/// Why a reducer refused an operation. The operation's changes are undone, and the
/// rejection is recorded with the event's author (see [`crate::Views::rejections`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Reject(pub String);

impl Reject {
    /// A rejection with this reason.
    pub fn new(reason: impl Into<String>) -> Reject {
        Reject(reason.into())
    }
}

/// A view: a pure fold of operations into a [`State`].
///
/// `apply` must depend only on the state and the event (no clock, no randomness, no I/O),
/// so every peer holding the same events computes byte-identical states.
pub trait Reducer: Send + Sync {
    /// The view's name; batches address operations to it by this name.
    fn name(&self) -> &str;

    /// Whether the view is commutative or order-sensitive.
    fn kind(&self) -> ViewKind;

    /// The version of the reducer's code (default 1). Raise it whenever `apply` would
    /// compute other rows from the same events: views stored by another version are
    /// rebuilt from the logs when they are opened, instead of keeping rows computed by
    /// other code.
    fn version(&self) -> u32 {
        1
    }

    /// Applies one operation. On `Err`, every change made by this call is undone.
    ///
    /// # Errors
    /// A [`Reject`] saying why the operation does not apply.
    fn apply(&self, state: &mut State, event: &Event<'_>) -> Result<(), Reject>;

    /// Whether an operation that was applied can no longer change this view, whatever
    /// arrives later (a put overwritten by a later put). Compaction drops the bodies of
    /// events all of whose operations are superseded. The default keeps everything.
    fn superseded(&self, state: &State, event: &Event<'_>) -> bool {
        let _ = (state, event);
        false
    }

    /// What the operation does, for a [`Gate`]. The default is [`Access::Write`].
    fn access(&self, event: &Event<'_>) -> Access {
        let _ = event;
        Access::Write
    }

    /// What the operation touches within the view (a key, a document id), for a [`Gate`]
    /// with rules per resource. The default is `None`: the view as a whole.
    fn resource(&self, event: &Event<'_>) -> Option<Vec<u8>> {
        let _ = event;
        None
    }
}

/// Access control in front of the views: decides, for every operation, whether its author
/// may do it at its place in the order. An operation refused by the gate is not applied and
/// is recorded as a rejection, like one a reducer refuses.
///
/// A gate must answer from the event alone (its author, order and counter) and rules that
/// hold for the whole thread, never from when it is asked: the engine asks again when it
/// replays, and commutative views ask for late events without rewinding. When the rules
/// change, call [`crate::Views::regate`] from the earliest place where answers may differ.
pub trait Gate: Send + Sync {
    /// Whether the operation `event` of `access` kind for the view `view`, touching
    /// `resource` within it ([`Reducer::resource`]), may apply.
    ///
    /// # Errors
    /// A [`Reject`] saying why not (it is recorded with the event's author).
    fn admits(
        &self,
        view: &str,
        access: Access,
        resource: Option<&[u8]>,
        event: &Event<'_>,
    ) -> Result<(), Reject>;

    /// Whether event `counter` of `log` was compacted: it applies nothing to any view,
    /// is not recorded as a rejection, and may have no body. The default is `false`.
    /// Like [`Gate::admits`], the answer must not depend on when it is asked; when it
    /// changes, call [`crate::Views::regate`] from the earliest event whose answer did.
    fn voids(&self, log: &threads_id::LogId, counter: u64) -> bool {
        let _ = (log, counter);
        false
    }
}
