//! Guest images: recipes, the builder and the on-disk cache.

mod build;
pub mod cache;
pub(crate) mod command;
pub mod guest;
pub mod progress;
pub mod recipe;
pub mod tools;

pub use build::{build, key_of, BuildError, BuildOptions, Built, StepFailure};
pub use cache::{Cache, CacheEntry, CacheError, Image, ImageHash, Manifest};
pub use progress::Progress;
pub use recipe::{Recipe, RecipeError, RecipeSource};
