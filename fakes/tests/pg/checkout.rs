//! The hosted checkout page and its redirects.
