//! Socket buffers: a byte ring allocated once per socket, and the assembler
//! that tracks out-of-order data written beyond the ring's readable part.
//! Nothing here allocates after construction.

mod assembler;
mod ring;

pub use assembler::{Assembler, TooManyHoles};
pub use ring::RingBuffer;
