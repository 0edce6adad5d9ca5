//! [`DeployError`]: what can go wrong reading a model file or predicting with it.

use std::path::PathBuf;

/// An error of this crate. Each variant states its own cause once; a wrapped error is its
/// [`std::error::Error::source`], not repeated in the message.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The model file could not be read.
    #[error("{}: cannot read the model file", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file, or its metadata is not a model's.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// What is wrong, naming the metadata key or tensor.
        message: String,
    },
    /// A model file written by a newer, incompatible version.
    #[error(
        "{}: model format version {found}; this build reads major version {supported}",
        path.display()
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The file's `format_version`.
        found: String,
        /// The major version this build reads.
        supported: u32,
    },
    /// A request or input does not fit the model: the field names the input (`inputs.rgb`,
    /// `instances[3].inputs.depth`).
    #[error("{field}: {message}")]
    Input {
        /// The input, as the request names it.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The weights do not load into the architecture the metadata describes.
    #[error("the weights do not fit the model the metadata describes")]
    Model(#[from] mmanet_models::ModelError),
    /// Decoding an input file failed.
    #[error(transparent)]
    Data(#[from] mmanet_data::DataError),
    /// Writing a file failed.
    #[error(transparent)]
    File(#[from] mmanet_fs::FsError),
    /// A libtorch call failed.
    #[error("libtorch")]
    Tch(#[from] tch::TchError),
    /// Creating or replaying a CUDA graph failed (`--cuda-graph`).
    #[error("cuda graph")]
    Graph(#[from] mmanet_sys::GraphError),
    /// libtorch refused an operation inside a network's forward pass or construction (tch's
    /// layers panic on such errors; the predictor turns the panic into this error).
    #[error("{what}: {message}")]
    Torch {
        /// What was running (`forward pass`, `building the network`).
        what: &'static str,
        /// libtorch's message, its first line.
        message: String,
    },
}

thread_local! {
    /// Whether this thread runs inside [`caught`].
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is inside a call whose panics this crate returns as
/// [`DeployError::Torch`]. A program's panic hook uses it to stay quiet about those (the
/// error reports them once); installing the hook is the program's choice (a process-wide
/// setting), e.g. `mmanet`'s `main`.
pub fn inside_guarded_call() -> bool {
    GUARDED.with(std::cell::Cell::get)
}

/// Runs `work`, returning a panic inside it (tch's layers and operators panic when libtorch
/// throws) as [`DeployError::Torch`] naming `what`. Nothing is left half-done, since `work`
/// only computes (it owns no shared state).
pub(crate) fn caught<T>(what: &'static str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    let outer = GUARDED.with(|g| g.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    GUARDED.with(|g| g.set(outer));
    result.unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        // tch's unwrap prints libtorch's text escaped, as `... Torch("<message>\\nException
        // raised from ...")`: its first line is the message.
        let text = text.split_once("Torch(\"").map_or(text, |(_, t)| t);
        let first = text.split("\\n").next().unwrap_or(text);
        let first = first.lines().next().unwrap_or(first).trim_end_matches("\")");
        Err(DeployError::Torch { what, message: first.to_string() })
    })
}

impl DeployError {
    /// A [`DeployError::Input`] naming `field`.
    pub fn input(field: impl Into<String>, message: impl Into<String>) -> Self {
        DeployError::Input { field: field.into(), message: message.into() }
    }

    /// A [`DeployError::Format`] on `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DeployError::Format { path: path.into(), message: message.into() }
    }

    /// Whether the error is the caller's input (a 4xx for a server), not the model or system.
    pub fn is_user_input(&self) -> bool {
        match self {
            DeployError::Input { .. } | DeployError::Data(_) => true,
            DeployError::Read { .. }
            | DeployError::Format { .. }
            | DeployError::Version { .. }
            | DeployError::Model(_)
            | DeployError::File(_)
            | DeployError::Tch(_)
            | DeployError::Graph(_)
            | DeployError::Torch { .. } => false,
        }
    }
}

/// `Result` with [`DeployError`].
pub type Result<T, E = DeployError> = std::result::Result<T, E>;
