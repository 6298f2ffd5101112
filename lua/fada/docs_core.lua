-- Documentation of the functions written in C (runtime/lua/lua_tensor*.c,
-- lua_random.c, lua_runtime.c). Loaded by help.lua the first time help is
-- asked for. Functions written in Lua document themselves where they are
-- defined, with fada.doc.
local fada = require 'fada'
local doc = fada.doc

doc('fada', 'fada', [[
Tensors for Lua 5.4: f32, f64, f16, bf16, i32, i64, u8 and bool, up to 8
dims in PyTorch order, views sharing storage, 1-based indices.
Create with zeros/ones/full/empty/arange/linspace/tensor/rand/randn;
methods are listed by help(fada.Tensor).]])

doc('Tensor', 'Tensor', [[
The methods of every tensor t: t:size(), t:view(2, 3), ... View methods
share storage with t; clone/to/contiguous copy; fill/zero/copy/set write
in place and return t.]])

-- ---- creation ----------------------------------------------------------

local DTYPES = "dtype: 'f32' (the default), 'f64', 'f16', 'bf16', 'i32', 'i64', 'u8' or 'bool'."

doc('fada.zeros', 'fada.zeros(size..., [dtype]) -> Tensor', [[
A tensor of zeros. The size as numbers or one table:
fada.zeros(2, 3) or fada.zeros({2, 3}).]] .. '\n' .. DTYPES)

doc('fada.ones', 'fada.ones(size..., [dtype]) -> Tensor', [[
A tensor of ones; the size as for fada.zeros.]] .. '\n' .. DTYPES)

doc('fada.empty', 'fada.empty(size..., [dtype]) -> Tensor', [[
A tensor whose values are not set (whatever the recycled buffer held).
Use it when every element is written next.]] .. '\n' .. DTYPES)

doc('fada.full', 'fada.full(size, value, [dtype]) -> Tensor', [[
A tensor with every element = value: fada.full({2, 3}, 0.5).]] .. '\n' .. DTYPES)

doc('fada.zeros_like', 'fada.zeros_like(x, [dtype]) -> Tensor', [[
Zeros of the shape of x (and its dtype unless given).]])
doc('fada.ones_like', 'fada.ones_like(x, [dtype]) -> Tensor', [[
Ones of the shape of x (and its dtype unless given).]])
doc('fada.empty_like', 'fada.empty_like(x, [dtype]) -> Tensor', [[
An unset tensor of the shape of x (and its dtype unless given).]])

doc('fada.arange', 'fada.arange([start,] stop, [step], [dtype]) -> Tensor', [[
The 1-d tensor start, start + step, ... below stop (stop excluded, as in
torch). Integer arguments give i64, others f32: fada.arange(5) is 0..4.]])

doc('fada.linspace', 'fada.linspace(start, stop, n, [dtype]) -> Tensor', [[
n evenly spaced points from start to stop, both included (f32 unless given).]])

doc('fada.tensor', 'fada.tensor(values, [dtype]) -> Tensor', [[
A tensor from nested tables, the shape from the nesting:
fada.tensor{{1, 2}, {3, 4}} is 2x2; fada.tensor(3.5) is 0-d. Booleans
count as 0/1. Every row of a level must have the same length.]] .. '\n' .. DTYPES)

doc('fada.is_tensor', 'fada.is_tensor(x) -> boolean', [[
true when x is a tensor (released or not).]])

-- ---- random ------------------------------------------------------------

doc('fada.Generator', 'fada.Generator([seed]) -> Generator', [[
A counter-based (Philox) random generator: the same seed gives the same
numbers for any thread count. Without a seed, the clock. Methods:
g:manual_seed(s), g:seed(), g:get_state() -> {seed, offset}, g:set_state(st).
Pass it as the last argument of rand/randn/randint/uniform_/normal_.]])

doc('fada.manual_seed', 'fada.manual_seed(seed)', [[
Reseeds the default generator (the one used when no Generator is passed).]])

doc('fada.rand', 'fada.rand(size..., [dtype], [generator]) -> Tensor', [[
Uniform random values in [0, 1): fada.rand(2, 3, fada.Generator(1)).]])

doc('fada.randn', 'fada.randn(size..., [dtype], [generator]) -> Tensor', [[
Standard normal random values (mean 0, std 1): fada.randn(1, 4, 64, 64, g).]])

doc('fada.randint', 'fada.randint(low, high, size..., [dtype], [generator]) -> Tensor', [[
Random integers in [low, high) (high excluded), i64 unless given.]])

-- ---- runtime -----------------------------------------------------------

doc('fada.set_num_threads', 'fada.set_num_threads(n)', [[
Threads used by the ops: sets OpenMP, oneDNN and OpenBLAS together
(default: the machine's cores). n from 1 to 1024.]])
doc('fada.get_num_threads', 'fada.get_num_threads() -> integer', [[
The thread count set by set_num_threads.]])

doc('fada.memory', 'fada.memory() -> table', [[
Bytes held by tensors: {live, pooled, peak, pool_limit, pool_hits,
pool_misses}. pooled is freed memory kept for reuse (see set_pool_limit).]])
doc('fada.set_pool_limit', 'fada.set_pool_limit(bytes)', [[
The most freed memory kept for reuse; 0 turns the pool off.]])
doc('fada.trim_memory', 'fada.trim_memory()', [[
Returns the pooled buffers to the system.]])

doc('fada.versions', 'fada.versions() -> string', [[
The versions block that `fadalua -v` prints: fadalua, oneDNN, OpenBLAS,
FFmpeg, libpng and libsndfile, the CPU features and the kernels chosen.]])

doc('fada.cpu', 'fada.cpu() -> table', [[
CPU features found at start-up: {avx2, fma, f16c, avx512f, avx512bw,
avx512vl, avx512bf16, amx_bf16 (booleans), cores (integer), brand (the
processor's name from CPUID, '' when it has none)}.]])

doc('fada.mkdir', 'fada.mkdir(dir)', [[
Makes the folder dir and any missing folders above it, as mkdir -p (no
shell: any name is safe). An error names the folder that could not be made
and why.]])
doc('fada.mkdir_parent', 'fada.mkdir_parent(path)', [[
Makes the folder a file at path is about to be written into (fada.mkdir of
everything before the last '/'; nothing for a bare file name).]])

doc('fada.set_printoptions', 'fada.set_printoptions{threshold, edgeitems, linewidth}', [[
How tensors print: more than threshold elements (1000) print as a summary
with edgeitems (3) values at each end of a dim; lines up to linewidth (80).]])

doc('fada.help', 'fada.help([x])', [[
Prints the documentation of x (a function, a module table, a tensor, or a
name such as 'zeros' or 'Tensor:size'); without x, an overview. In
fadalua it is also the global help.]])

doc('fada.doc', 'fada.doc(target, signature, [text]) -> target', [[
Documents target (a function or table, or its name such as 'fada.foo' or
'Tensor:bar') for help: fada.doc(f, 'mod.f(x, [n]) -> Tensor', 'What f does.').
The first line of text is the summary shown in lists.]])

-- ---- tensor methods: facts ---------------------------------------------

doc('Tensor:size', 'Tensor:size([dim]) -> table | integer', [[
The shape as a table {2, 3}, or the size of one dim (1-based, negative
from the end): t:size(-1).]])
doc('Tensor:stride', 'Tensor:stride([dim]) -> table | integer', [[
Strides in elements, all dims or one.]])
doc('Tensor:dim', 'Tensor:dim() -> integer', 'The number of dims (0 for a 0-d tensor).')
doc('Tensor:numel', 'Tensor:numel() -> integer', 'The number of elements (also t:nelement()).')
doc('Tensor:dtype', 'Tensor:dtype() -> string', "The element type: 'f32', 'bf16', 'i64', 'bool', ...")
doc('Tensor:is_contiguous', 'Tensor:is_contiguous() -> boolean', 'true when the elements are dense in row-major order.')
doc('Tensor:is_released', 'Tensor:is_released() -> boolean', 'true after t:release() (or leaving a <close> scope).')
doc('Tensor:is_same_storage', 'Tensor:is_same_storage(other) -> boolean', 'true when both tensors view one storage.')
doc('Tensor:storage_offset', 'Tensor:storage_offset() -> integer', 'Where the first element sits in the storage (elements, 0-based).')
doc('Tensor:version', 'Tensor:version() -> integer', 'The storage write counter (bumped by every in-place write).')

-- ---- views -------------------------------------------------------------

doc('Tensor:view', 'Tensor:view(size...) -> Tensor', [[
The same elements with another shape, sharing storage; one size may be -1
(inferred). The tensor must be contiguous enough; see reshape otherwise.]])
doc('Tensor:reshape', 'Tensor:reshape(size...) -> Tensor', [[
Like view when the strides allow it, else a contiguous copy.]])
doc('Tensor:narrow', 'Tensor:narrow(dim, start, length) -> Tensor', [[
The view of `length` indices of dim from start (1-based):
t:narrow(2, 3, 4) keeps columns 3..6.]])
doc('Tensor:select', 'Tensor:select(dim, index) -> Tensor', [[
The view at one index of dim, with that dim removed; -1 is the last.]])
doc('Tensor:transpose', 'Tensor:transpose(dim1, dim2) -> Tensor', 'The view with two dims swapped.')
doc('Tensor:t', 'Tensor:t() -> Tensor', 'The transpose of a matrix (a view).')
doc('Tensor:permute', 'Tensor:permute(dims...) -> Tensor', [[
The view with dims reordered: t:permute(1, 3, 4, 2) turns NCHW into NHWC.]])
doc('Tensor:expand', 'Tensor:expand(size... | other) -> Tensor', [[
The view broadcast to a larger shape (size-1 dims repeat with stride 0);
-1 keeps a dim. Given a tensor, expands to its shape (also t:expand_as).]])
doc('Tensor:squeeze', 'Tensor:squeeze([dim]) -> Tensor', 'The view without size-1 dims (or only dim).')
doc('Tensor:unsqueeze', 'Tensor:unsqueeze(dim) -> Tensor', 'The view with a size-1 dim inserted at dim.')
doc('Tensor:contiguous', 'Tensor:contiguous() -> Tensor', 'The tensor itself when contiguous, else a dense copy.')
doc('Tensor:blocked', 'Tensor:blocked() -> Tensor', [[
The tensor in the blocked layout oneDNN's AVX2 convolutions use (nChw8c: [N, C/8, H, W, 8] in
memory; the shape stays [N, C, H, W]); 4-d f32 with C a multiple of 8. conv2d and group_norm read
it and write it again, so a chain of them skips the layout conversions around every convolution;
any other op turns the tensor back into NCHW in place, once. The tensor itself when already blocked.]])
doc('Tensor:is_blocked', 'Tensor:is_blocked() -> boolean', 'true while the tensor is in the blocked layout (see Tensor:blocked).')

-- ---- copies and writes -------------------------------------------------

doc('Tensor:clone', 'Tensor:clone() -> Tensor', 'A contiguous copy with its own storage.')
doc('Tensor:to', 'Tensor:to(dtype) -> Tensor', [[
A copy converted to dtype (the tensor itself when it already is):
t:to('bf16').]])
doc('Tensor:copy', 'Tensor:copy(src) -> t', [[
Writes src into t in place, broadcasting src and converting its dtype.]])
doc('Tensor:fill', 'Tensor:fill(value) -> t', 'Sets every element to value, in place.')
doc('Tensor:zero', 'Tensor:zero() -> t', 'Sets every element to 0, in place.')
doc('Tensor:release', 'Tensor:release()', [[
Frees the storage now rather than at garbage collection (the same as
leaving a `local x <close>` scope). Using t afterwards raises
"attempt to use a released tensor".]])

-- ---- elements ----------------------------------------------------------

doc('Tensor:get', 'Tensor:get(i, j, ...) -> number | boolean', [[
One element, by 1-based indices (or one table of them); negative
indices count from the end.]])
doc('Tensor:set', 'Tensor:set(i, j, ..., value) -> t', 'Writes one element, in place.')
doc('Tensor:item', 'Tensor:item() -> number | boolean', 'The value of a one-element tensor.')
doc('Tensor:totable', 'Tensor:totable() -> table', 'The values as nested tables (a number for a 0-d tensor).')
doc('Tensor:tolist', 'Tensor:tolist() -> table', 'The values as one flat array, in row-major order.')
doc('Tensor:uniform_', 'Tensor:uniform_([low, high], [generator]) -> t', 'Fills t with uniform values in [low, high) (default [0, 1)).')
doc('Tensor:normal_', 'Tensor:normal_([mean, std], [generator]) -> t', 'Fills t with normal values (default mean 0, std 1).')

return true
