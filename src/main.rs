//! The `cairn` binary (also installable as `consul`).
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// mimalloc's `mi_option_arena_eager_commit` (mimalloc.h `mi_option_e` of the v3 sources libmimalloc-sys builds).
const MI_OPTION_ARENA_EAGER_COMMIT: i32 = 4;

extern "C" {
    /// mimalloc's `mi_option_set` (linked in by libmimalloc-sys).
    fn mi_option_set(option: i32, value: std::os::raw::c_long);
}

/// Runs from `.init_array`, before the Rust runtime's first allocation: mimalloc then commits its arena as
/// pages are touched instead of all at once in transparent huge pages (an idle client agent: 35 MB -> 12 MB).
extern "C" fn lazy_heap() {
    // SAFETY: sets one of mimalloc's documented options; nothing else runs yet.
    unsafe { mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

#[used]
#[link_section = ".init_array"]
static LAZY_HEAP: extern "C" fn() = lazy_heap;

fn main() {
    // Also no transparent huge pages for what is mapped later (mimalloc asks for them on its arenas).
    // SAFETY: prctl(PR_SET_THP_DISABLE) only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    std::process::exit(cairn::cli::run(std::env::args_os().collect()));
}
