// The MCU resource model: from an Architecture to the figures NanoNAS's reference tool (ST's
// stm32tflm, a TFLite Micro interpreter built for x86-64) reports for the full-integer uint8 TFLite
// graph of that architecture. Every rule here is in
// tests/data/reference-models/mcu-memory-model.md; RAM is byte-for-byte, Flash is the converter
// estimate until an exporter supplies its file size.
//
// Pure functions, no I/O, thread-compatible.
//
//   McuResources r = EstimateMcuResources(arch);            // r.ram_bytes, r.flash_bytes, r.macc
//   McuGraph g = DescribeMcuGraph(arch);                     // the converted graph, op by op
#ifndef NANONAS_COMMON_ARCH_MCU_MODEL_H_
#define NANONAS_COMMON_ARCH_MCU_MODEL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/arch/architecture.h"

namespace nanonas {

enum class McuTensorType { kUint8, kInt8, kInt32 };
const char* McuTensorTypeName(McuTensorType t);  // "UINT8", "INT8", "INT32" (TFLite's names)

// One tensor of the converted graph.
struct McuTensor {
  std::string name;        // role, e.g. "conv2/weights", "cell1/maxpool"
  std::vector<int> shape;  // TFLite shape: activations [1,H,W,C], dense [1,N], scalar []
  McuTensorType type = McuTensorType::kInt8;
  bool constant = false;  // weights, biases, BN vectors, axes: stay in Flash
  int64_t num_elements() const;
  int64_t bytes() const;
};

// One op of the converted graph, named as TFLite's BuiltinOperator ("CONV_2D", "MEAN", ...).
struct McuGraphOp {
  std::string op;
  std::vector<int> inputs, outputs;                           // tensor indices
  std::vector<std::vector<int>> input_shapes, output_shapes;  // the same tensors' shapes
  int64_t scratch_bytes = 0;  // scratch buffer requested in Prepare (0: none)
  bool fused_relu = false;    // CONV_2D
};

// The graph TF's converter (TF 2.11-2.14, full-integer, uint8 in/out) produces for an Architecture.
// 2023: N = 4c + 9 ops, T = 8c + 18 tensors; 2024: N = 2c + 6, T = 4c + 12.
struct McuGraph {
  Variant variant = Variant::k2023;
  std::vector<McuTensor> tensors;  // in creation order (not the converter's file order)
  std::vector<McuGraphOp> ops;     // in execution order
  int input = 0;                   // graph input tensor (uint8)
  int output = 0;                  // graph output tensor (uint8)

  int num_tensors() const { return static_cast<int>(tensors.size()); }
  int num_ops() const { return static_cast<int>(ops.size()); }
  int num_scratch_buffers() const;  // S: ops with scratch_bytes > 0
  std::vector<std::string> op_names() const;
};

// REQUIRES: `arch` comes from BuildArchitecture (channels and spec consistent).
McuGraph DescribeMcuGraph(const Architecture& arch);

// "QUANTIZE [1,50,50,3]UINT8 -> [1,50,50,3]INT8" one line per op, for logs and test messages.
std::string FormatMcuGraph(const McuGraph& graph);

// Rounds up to a multiple of 16 (TFLM's buffer alignment).
inline int64_t AlignUp16(int64_t bytes) { return (bytes + 15) / 16 * 16; }

// ---- Arena: TFLM's greedy memory planner -------------------------------------------------------

// A buffer for the planner: alive from op first_op to op last_op inclusive.
struct PlannedBuffer {
  int64_t size = 0;  // already aligned by the caller (A16)
  int first_op = 0;
  int last_op = 0;
  int64_t offset = -1;  // set by PlanGreedyArena
  std::string name;     // for messages
};

// The non-constant tensors (A16 bytes; graph input alive from op 0, graph output to the last op)
// followed by one buffer per scratch request (alive during its op only).
std::vector<PlannedBuffer> ArenaBuffers(const McuGraph& graph);

// TFLM's GreedyMemoryPlanner: sorts by size descending (equal sizes: the buffer added last comes
// first, as TFLM's sort leaves them), places each buffer at the lowest
// offset that does not overlap, in memory, any already placed buffer alive at the same time (first
// fit in offset order). Fills each buffer's offset; returns the high-water mark in bytes.
int64_t PlanGreedyArena(std::vector<PlannedBuffer>* buffers);

// Arena bytes of the graph by the planner.
int64_t ArenaBytes(const McuGraph& graph);

// max over ops of the A16 sizes of its non-constant inputs, outputs and scratch: a lower bound for
// any graph, and what the planner gives for NanoNAS's chains except on degenerate inputs (2x2x3,
// k = 21..24, c = 0 is the only exception found; see tests/mcu/mcu_model_test.cc).
int64_t ArenaBytesLinearChain(const McuGraph& graph);

// ---- Persistent part ---------------------------------------------------------------------------

struct PersistentAllocation {
  std::string what;
  int64_t size = 0;
  int align = 1;
};

// TFLM's persistent allocations, in order (64-bit host sizes), as mcu-memory-model.md lists them.
std::vector<PersistentAllocation> PersistentAllocations(const McuGraph& graph);

// Follows PersistentAllocations downwards from a 64-byte-aligned arena end:
// tail = floor((tail - size) / align) * align; returns the bytes taken.
int64_t PersistentBytes(const McuGraph& graph);

// The closed form of mcu-memory-model.md for the architecture's variant (cross-check only).
int64_t PersistentBytesClosedForm(const Architecture& arch);

// ---- Figures -----------------------------------------------------------------------------------

// stm32tflm's RAM from arena_used_bytes(): 512 * (floor((used + 256) / 512) + 1).
int64_t RamBytesFromArenaUsed(int64_t used);

// The size of the TF converter's .tflite file for the architecture, by the fitted formula of
// mcu-memory-model.md (within a few tens of bytes for 2023 graphs). For 2024 graphs, for which no
// reference files exist, the structural constants are derived from the 2023 files with the BN ops
// stripped (see the .cc): a rough estimate, a few hundred bytes either way.
int64_t EstimateConverterFlashBytes(const Architecture& arch);

struct McuResources {
  int64_t macc = 0;
  int64_t flash_bytes = 0;
  int64_t ram_bytes = 0;
  int64_t arena_bytes = 0;  // planned, non-persistent
  int64_t persistent_bytes = 0;
  int64_t arena_used_bytes() const { return arena_bytes + persistent_bytes; }
  bool flash_exact = false;  // false: EstimateConverterFlashBytes; true: options.flash_bytes
};

struct McuModelOptions {
  // When set, Flash is this function's answer (e.g. the exporter's exact size of nanonas's own
  // .tflite file for the architecture) instead of the converter estimate.
  std::function<int64_t(const Architecture&)> flash_bytes;
};

// REQUIRES: `arch` comes from BuildArchitecture.
McuResources EstimateMcuResources(const Architecture& arch, const McuModelOptions& options = {});

}  // namespace nanonas

#endif  // NANONAS_COMMON_ARCH_MCU_MODEL_H_
