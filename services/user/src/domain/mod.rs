//! The account rules, free of I/O: what a valid email, password, phone number and name are.
//! Each parses into a type that cannot hold an invalid value.

pub mod email;
pub mod name;
pub mod password;
pub mod phone;

pub use email::Email;
pub use name::DisplayName;
pub use password::Password;
pub use phone::Phone;
