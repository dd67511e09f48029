//! Semantic analysis placeholder.
