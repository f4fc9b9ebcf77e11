//! Architecture registry. TODO(helper).
