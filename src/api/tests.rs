//! Tests of the API layer (added with the routes).
