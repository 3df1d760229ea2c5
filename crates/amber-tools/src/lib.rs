//! Command-line tools that work on Amber's and Redis's files with the server stopped:
//! `amber-check-rdb` (and, as their issues land, `amber-check-aof` and `amber-backup`).

#![warn(missing_docs)]
#![forbid(unsafe_code)]
