//! nginx `auth_request` in front of an upstream (end to end): to be written.
