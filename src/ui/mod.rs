//! Everything between ratchet and a person or a script: the output printer
//! (human text and JSON Lines records on stdout; status, warnings and errors
//! on stderr), prompts that only appear on a terminal, and logging set-up.
//!
//! Nothing here knows about Matrix: records are built by the commands and
//! rendered here.

pub(crate) mod hint;
pub(crate) mod logging;
pub(crate) mod output;
pub(crate) mod prompt;
pub(crate) mod terminal;
