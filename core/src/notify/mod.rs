//! Notification vocabulary: templates and their rendering, and the message shape of every backend.
//! Delivery is `persistctl::notify`.

pub mod message;
pub mod template;

pub use template::{Priority, Rendered};
