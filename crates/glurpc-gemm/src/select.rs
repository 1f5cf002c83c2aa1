//! Which micro-kernel the products run: the widest this CPU supports,
//! detected once with `is_x86_feature_detected!`, unless the environment
//! variable [`ENV`] (`GLURPC_GEMM=avx512|avx2|portable`) forces one. A
//! forced kernel the CPU lacks, or an unknown name, is an error, never a
//! silent fallback.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The environment variable that forces a kernel.
pub const ENV: &str = "GLURPC_GEMM";

/// A product implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// 14×32 AVX-512F micro-kernel on 32-column panels.
    Avx512,
    /// 6×16 AVX2/FMA micro-kernel on 16-column panels.
    Avx2,
    /// No packed kernel: [`crate::PackedWeights::pack`] returns `None` and the
    /// caller runs its own portable product.
    Portable,
}

impl Kernel {
    /// Every kernel, widest first.
    pub const ALL: [Kernel; 3] = [Kernel::Avx512, Kernel::Avx2, Kernel::Portable];

    /// The name [`ENV`] takes (`avx512`, `avx2`, `portable`).
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }

    /// True when this CPU can run the kernel (the portable path always can).
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Kernel::Avx512 => std::is_x86_feature_detected!("avx512f"),
                Kernel::Avx2 => {
                    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
                }
                Kernel::Portable => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Kernel::Portable
        }
    }

    /// The widest kernel this CPU supports.
    pub fn best() -> Kernel {
        Kernel::ALL
            .into_iter()
            .find(|k| k.supported())
            .unwrap_or(Kernel::Portable)
    }

    /// Columns per packed panel (0 for the portable path, which packs nothing).
    pub fn panel_width(self) -> usize {
        match self {
            Kernel::Avx512 => 32,
            Kernel::Avx2 => 16,
            Kernel::Portable => 0,
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kernel {
    type Err = SelectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        Kernel::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or(SelectError::Unknown(s))
    }
}

/// Why [`ENV`] could not be honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// A value that names no kernel.
    Unknown(String),
    /// A kernel this CPU cannot run.
    Unsupported(Kernel),
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let here: Vec<&str> = Kernel::ALL
            .into_iter()
            .filter(|k| k.supported())
            .map(Kernel::name)
            .collect();
        match self {
            SelectError::Unknown(v) => write!(
                f,
                "{ENV}={v:?} names no matrix kernel (one of avx512, avx2, portable; this CPU runs {})",
                here.join(", ")
            ),
            SelectError::Unsupported(k) => write!(
                f,
                "{ENV}={k}: this CPU lacks {} (it runs {})",
                match k {
                    Kernel::Avx512 => "AVX-512F",
                    _ => "AVX2 + FMA",
                },
                here.join(", ")
            ),
        }
    }
}

impl std::error::Error for SelectError {}

/// The kernel for a value of [`ENV`] (`None` or empty: the widest supported).
pub fn choose(forced: Option<&str>) -> Result<Kernel, SelectError> {
    match forced.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(Kernel::best()),
        Some(s) => {
            let k: Kernel = s.parse()?;
            if k.supported() {
                Ok(k)
            } else {
                Err(SelectError::Unsupported(k))
            }
        }
    }
}

/// The process's kernel: [`ENV`] read once, at the first call.
pub fn selected() -> Result<Kernel, SelectError> {
    static SELECTED: OnceLock<Result<Kernel, SelectError>> = OnceLock::new();
    SELECTED
        .get_or_init(|| choose(std::env::var(ENV).ok().as_deref()))
        .clone()
}
