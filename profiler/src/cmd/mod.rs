//! One file a command. `main` parses and dispatches; each command gets the [`Env`] (global
//! options and how to open the live probe) and its own arguments, so tests run every command
//! on a fake source without root.

pub mod advise;
pub mod check;
pub mod diff;
pub mod exercise;
pub mod html;
pub mod log;
pub mod record;
pub mod report;
pub mod serve;
pub mod top;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_slow;
#[cfg(test)]
mod tests_wait;

pub use crate::session::Env;
