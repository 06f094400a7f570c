//! The runtime's error type.

use std::path::PathBuf;

use libcontainer::error::LibcontainerError;

use crate::bundle::BundleError;
use crate::sealed::SealError;

/// Everything a runtime command can fail with. Messages are one line and name the object.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No container with this id under the state root.
    #[error("container {0:?} does not exist")]
    NotFound(String),
    /// A container with this id already exists.
    #[error("container {0:?} already exists")]
    Exists(String),
    /// The id has characters runc does not allow.
    #[error("invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.'")]
    InvalidId(String),
    /// The bundle is unusable.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The runtime binary could not be protected (see [`crate::sealed`]).
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The container is in a state that does not allow the operation.
    #[error("container {id:?} is {status}: cannot {op}")]
    WrongState {
        /// Container id.
        id: String,
        /// Its current status, lower case.
        status: String,
        /// What was attempted.
        op: &'static str,
    },
    /// A signal name or number that does not exist.
    #[error("unknown signal {0:?}")]
    BadSignal(String),
    /// A command-line value that does not make sense.
    #[error("{0}")]
    Usage(String),
    /// libcontainer failed while doing `op`.
    #[error("{op}")]
    Container {
        /// What was attempted.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: LibcontainerError,
    },
    /// A cgroup operation failed.
    #[error("{op}: {message}")]
    Cgroup {
        /// What was attempted.
        op: &'static str,
        /// The underlying error, rendered (libcgroups' error types are generic per manager).
        message: String,
    },
    /// File-system trouble on a named path.
    #[error("{path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// Wraps a libcontainer error with the operation that failed.
    pub fn container(op: &'static str) -> impl FnOnce(LibcontainerError) -> Self {
        move |source| RuntimeError::Container { op, source }
    }

    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RuntimeError::Io { path, source }
    }
}

/// Result alias for runtime operations.
pub type Result<T> = std::result::Result<T, RuntimeError>;
