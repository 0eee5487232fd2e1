// cuda_emu.h — runs kernels/*.cu on the CPU, for tests on machines without a GPU.
//
// Just enough of CUDA C for our kernels: threadIdx / blockIdx / blockDim as thread-local
// variables, __syncthreads() as a barrier across the threads of a block (which then run as
// std::threads), dynamic shared memory as one buffer per block, the float/int math the kernels
// call. Compiled with -ffp-contract=off to match NVRTC's --fmad=false: float expressions then
// round exactly as on the GPU (IEEE f32/f64, division and sqrt correctly rounded there too).
// What it cannot show: races between threads of different blocks, warp behaviour, memory
// limits, the driver API. Used by src/engine/cuda/emulated.rs (a unit test).
#include <barrier>
#include <math.h> // floorf, fmaf, fminf, fmaxf, fmax in the global namespace, as in CUDA
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>

struct emu_dim3 {
    unsigned x, y, z;
};
static thread_local emu_dim3 threadIdx, blockIdx;
static thread_local emu_dim3 blockDim, gridDim;
static thread_local unsigned char* emu_dyn_smem = nullptr;
static thread_local std::barrier<>* emu_bar = nullptr;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

static inline void __syncthreads() {
    if (!emu_bar) std::abort(); // a kernel with __syncthreads must be launched threaded
    emu_bar->arrive_and_wait();
}
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

// Runs `k` over the grid, blocks in order. Kernels without __syncthreads run their threads in
// a loop; the others run blockDim threads as std::threads that walk the blocks together, meeting
// at a barrier after each block (so the block's shared memory can be reused).
static void emu_run(emu_dim3 grid, emu_dim3 block, unsigned shmem, bool threaded,
                    const std::function<void()>& k) {
    unsigned n = block.x * block.y * block.z;
    std::vector<unsigned char> shared(shmem + 64);
    auto each_block = [&](auto&& f) {
        for (unsigned bz = 0; bz < grid.z; ++bz)
            for (unsigned by = 0; by < grid.y; ++by)
                for (unsigned bx = 0; bx < grid.x; ++bx) f(emu_dim3{bx, by, bz});
    };
    auto enter = [&](unsigned t, emu_dim3 b, std::barrier<>* bar) {
        threadIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
        blockIdx = b;
        blockDim = block;
        gridDim = grid;
        emu_dyn_smem = shared.data();
        emu_bar = bar;
    };
    if (!threaded) {
        each_block([&](emu_dim3 b) {
            for (unsigned t = 0; t < n; ++t) {
                enter(t, b, nullptr);
                k();
            }
        });
        return;
    }
    std::barrier<> bar(n);
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < n; ++t)
        ts.emplace_back([&, t] {
            each_block([&](emu_dim3 b) {
                enter(t, b, &bar);
                k();
                bar.arrive_and_wait();
            });
        });
    for (auto& t : ts) t.join();
}
