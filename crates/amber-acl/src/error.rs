//! Why a rule was refused, with Redis's texts.

/// A rule `ACL SETUSER` (or an ACL file) could not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Not a rule.
    #[error("Syntax error")]
    Syntax,
    /// `+foo`, `-@bar`: no such command or category.
    #[error("Unknown command or category name in ACL")]
    UnknownName,
    /// A key pattern after `allkeys`.
    #[error(
        "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
    )]
    AfterAllKeys,
    /// A channel pattern after `allchannels`.
    #[error(
        "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels"
    )]
    AfterAllChannels,
    /// `<pass` or `!hash` of a password the user does not have.
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    /// `#hash` that is not 64 lowercase hex digits.
    #[error(
        "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
    )]
    BadHash,
    /// `+config|get|x`: a first argument of a subcommand.
    #[error("Allowing first-arg of a subcommand is not supported")]
    FirstArgOfSubcommand,
    /// A selector opened with `(` and never closed.
    #[error("Unmatched parenthesis in acl selector")]
    UnmatchedParenthesis,
    /// A user defined twice in a configuration file.
    #[error("Duplicate user found. A user can only be defined once in config files")]
    DuplicateUser,
}
