//! hermetic-eif (work in progress).
