//! Checking a batch before it is written: what the views would refuse if this peer wrote
//! it now, so a write that would be refused is refused before it is stored.

use std::sync::Arc;

use threads_log::EventOrder;
use threads_store::Store;

use crate::engine::Views;
use crate::event::{Batch, Event};

/// One operation of a batch that the views would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The operation's position in the batch.
    pub index: u32,
    /// The view it addresses.
    pub view: String,
    /// Why it would be refused.
    pub reason: String,
    /// Whether the gate (access control) refused it, rather than the view's reducer.
    pub forbidden: bool,
}

impl<S: Store + 'static> Views<S> {
    /// What the views would refuse of `batch` written as the event at `order`, given the
    /// current state: every operation goes through the gate and its reducer in batch order,
    /// each seeing the changes of the operations before it (in every view), and then every
    /// change is rolled back. Returns the refused operations, in batch order; empty if the
    /// whole batch would apply. Operations addressed to views this set does not hold are
    /// not checked.
    ///
    /// Only the checked views' rows are touched, and only as the batch touches them: the
    /// cost is the batch's, not the views'.
    pub fn check(&mut self, order: EventOrder, batch: &Batch) -> Vec<Refused> {
        let mut refused = Vec::new();
        let mut begun = vec![false; self.states.len()];
        for (index, (name, data)) in batch.ops().iter().enumerate() {
            let Some(&view) = self.by_name.get(name) else {
                continue;
            };
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let reducer = Arc::clone(&self.reducers[view]);
            let op = Event {
                thread: self.thread,
                order,
                index,
                data,
            };
            if let Some(gate) = &self.gate {
                let resource = reducer.resource(&op);
                if let Err(reject) = gate.admits(
                    reducer.name(),
                    reducer.access(&op),
                    resource.as_deref(),
                    &op,
                ) {
                    refused.push(Refused {
                        index,
                        view: name.clone(),
                        reason: reject.0,
                        forbidden: true,
                    });
                    continue;
                }
            }
            let state = &mut self.states[view];
            if !begun[view] {
                state.begin();
                begun[view] = true;
            }
            if let Err(reject) = reducer.apply(state, &op) {
                refused.push(Refused {
                    index,
                    view: name.clone(),
                    reason: reject.0,
                    forbidden: false,
                });
            }
        }
        for (state, begun) in self.states.iter_mut().zip(begun) {
            if begun {
                state.roll_back();
            }
        }
        refused
    }
}
