// Reached only when the compiler finds no real libtorch: `.cargo/config.toml` puts this
// folder last on the C++ include path, after the `-I $LIBTORCH/include` of torch-sys.
#error "libtorch not found. Run `bash scripts/setup.sh` in the l2t repository: it fetches libtorch 2.13.0 into ~/.cache/l2t and links it as .libtorch. Or export LIBTORCH=/path/to/libtorch."
