//! Checking a batch before it is written: what the views would refuse if this peer wrote
//! it now, so a write that would be refused is refused before it is stored.

use std::sync::Arc;

use threads_log::EventOrder;
use threads_store::Store;

use crate::engine::Views;
use crate::error::Result;
use crate::event::{Batch, Event};
use crate::state::State;

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
    ///
    /// # Errors
    /// A store error while reading rows the views need.
    pub async fn check(&mut self, order: EventOrder, batch: &Batch) -> Result<Vec<Refused>> {
        Ok(self.check_many(&[(order, batch)]).await?.remove(0))
    }

    /// [`Views::check`] for several events written one after the other (a group commit):
    /// each event is checked against the state as changed by the earlier events that would
    /// apply; an event with a refused operation changes nothing for the later ones. Returns
    /// the refusals of each event, in order. Nothing changes.
    ///
    /// # Errors
    /// A store error while reading rows the views need.
    pub async fn check_many(
        &mut self,
        events: &[(EventOrder, &Batch)],
    ) -> Result<Vec<Vec<Refused>>> {
        self.reload_unless_ahead().await?;
        loop {
            for state in &mut self.states {
                state.begin();
            }
            let mut out = Vec::with_capacity(events.len());
            for (order, batch) in events {
                let points: Vec<usize> = self.states.iter().map(State::savepoint).collect();
                let refused = self.check_event(*order, batch);
                if !refused.is_empty() {
                    // The event would not apply at all: later events see none of it.
                    for (state, point) in self.states.iter_mut().zip(points) {
                        state.roll_back_to(point);
                    }
                }
                out.push(refused);
            }
            for state in &mut self.states {
                state.roll_back_to(0);
                state.end();
            }
            if !self.missed() {
                return Ok(out);
            }
            self.fetch_missed().await?;
        }
    }

    fn check_event(&mut self, order: EventOrder, batch: &Batch) -> Vec<Refused> {
        let mut refused = Vec::new();
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
            if let Err(reject) = reducer.apply(state, &op) {
                refused.push(Refused {
                    index,
                    view: name.clone(),
                    reason: reject.0,
                    forbidden: false,
                });
            }
        }
        refused
    }
}
