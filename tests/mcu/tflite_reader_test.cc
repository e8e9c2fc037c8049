#include "common/tflite/tflite_reader.h"

#include <cmath>
#include <string>
#include <vector>

#include "flatbuffers/flatbuffers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/mcu/reference_models.h"

namespace nanonas {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(TfliteReaderTest, ReadsTheReferenceModelsAndTheirQuantization) {
  const std::string missing = MissingReferenceModels();
  ASSERT_TRUE(missing.empty()) << missing;
  for (const ReferenceModel& m : ReferenceModels()) {
    SCOPED_TRACE(m.file);
    absl::StatusOr<TfliteGraph> g = ReadTfliteFile(ReferenceModelPath(m));
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ(g->schema_version, 3u);
    EXPECT_EQ(g->file_bytes, m.flash);
    EXPECT_EQ(static_cast<int>(g->tensors.size()), 8 * m.c + 18);
    EXPECT_EQ(static_cast<int>(g->ops.size()), 4 * m.c + 9);
    ASSERT_EQ(g->inputs.size(), 1u);
    ASSERT_EQ(g->outputs.size(), 1u);

    const TfliteTensor& in = g->tensors[g->inputs[0]];
    EXPECT_EQ(in.type, tflite::TensorType_UINT8);
    EXPECT_THAT(in.shape, ElementsAre(1, m.height, m.width, m.input_channels));
    EXPECT_THAT(in.quantization.scale, ElementsAre(1.0f));
    EXPECT_THAT(in.quantization.zero_point, ElementsAre(0));
    EXPECT_FALSE(in.is_constant());

    const TfliteTensor& out = g->tensors[g->outputs[0]];
    EXPECT_EQ(out.type, tflite::TensorType_UINT8);
    EXPECT_THAT(out.shape, ElementsAre(1, m.classes));
    EXPECT_THAT(out.quantization.scale, ElementsAre(1.0f / 256));
    EXPECT_THAT(out.quantization.zero_point, ElementsAre(0));

    // After the first QUANTIZE: int8, scale 1, zero point -128.
    ASSERT_EQ(g->ops[0].op, "QUANTIZE");
    const TfliteTensor& q = g->tensors[g->ops[0].outputs[0]];
    EXPECT_EQ(q.type, tflite::TensorType_INT8);
    EXPECT_THAT(q.quantization.zero_point, ElementsAre(-128));

    std::vector<int> conv_out;
    for (const TfliteOp& op : g->ops) {
      if (op.op == "CONV_2D") {
        EXPECT_EQ(op.padding, "SAME");
        EXPECT_EQ(op.stride_h, 1);
        EXPECT_EQ(op.stride_w, 1);
        EXPECT_EQ(op.activation, "RELU");
        ASSERT_EQ(op.inputs.size(), 3u);
        const TfliteTensor& w = g->tensors[op.inputs[1]];
        const TfliteTensor& b = g->tensors[op.inputs[2]];
        const int cout = w.shape[0];
        conv_out.push_back(cout);
        EXPECT_EQ(w.type, tflite::TensorType_INT8);
        EXPECT_TRUE(w.is_constant());
        EXPECT_EQ(w.constant_bytes, w.bytes());
        EXPECT_EQ(w.quantization.scale.size(), static_cast<size_t>(cout));  // per channel
        EXPECT_THAT(w.quantization.zero_point, Each(0));                    // symmetric
        EXPECT_EQ(w.quantization.quantized_dimension, 0);
        EXPECT_EQ(b.type, tflite::TensorType_INT32);
        ASSERT_EQ(b.quantization.scale.size(), static_cast<size_t>(cout));
        // bias scale = input scale x weight scale, per channel.
        const float in_scale = g->tensors[op.inputs[0]].quantization.scale[0];
        for (int i = 0; i < cout; ++i) {
          EXPECT_NEAR(b.quantization.scale[i], in_scale * w.quantization.scale[i],
                      1e-6 * std::fabs(b.quantization.scale[i]) + 1e-12);
        }
        EXPECT_THAT(g->tensors[op.outputs[0]].quantization.zero_point, ElementsAre(-128));
      } else if (op.op == "MAX_POOL_2D") {
        EXPECT_EQ(op.padding, "VALID");
        EXPECT_EQ(op.filter_h, 2);
        EXPECT_EQ(op.filter_w, 2);
        EXPECT_EQ(op.stride_h, 2);
        // MAX_POOL keeps its input's quantization.
        EXPECT_EQ(g->tensors[op.outputs[0]].quantization.scale,
                  g->tensors[op.inputs[0]].quantization.scale);
      } else if (op.op == "MEAN") {
        EXPECT_FALSE(op.keep_dims);
      } else if (op.op == "SOFTMAX") {
        EXPECT_THAT(g->tensors[op.outputs[0]].quantization.scale, ElementsAre(1.0f / 256));
        EXPECT_THAT(g->tensors[op.outputs[0]].quantization.zero_point, ElementsAre(-128));
      }
    }
    EXPECT_EQ(conv_out, m.channels);
  }
}

TEST(TfliteReaderTest, CorruptOrForeignBytesAreInvalidArgument) {
  const std::string missing = MissingReferenceModels();
  ASSERT_TRUE(missing.empty()) << missing;
  absl::StatusOr<std::string> bytes =
      ReadFileToString(ReferenceModelPath(ReferenceModels().front()));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_TRUE(VerifyTfliteModel(*bytes).ok());

  auto expect_invalid = [](const std::string& data, const std::string& what) {
    absl::StatusOr<TfliteGraph> g = DescribeTfliteModel(data);
    EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument) << what;
  };
  expect_invalid("", "empty");
  expect_invalid("TFL3", "too short");
  expect_invalid(std::string(4096, '\0'), "zeros");
  expect_invalid("this is a text file, not a model, padded to some length........", "text");
  for (size_t keep : {size_t{8}, size_t{100}, bytes->size() / 2, bytes->size() - 64}) {
    expect_invalid(bytes->substr(0, keep), "truncated to " + std::to_string(keep));
  }
  std::string wrong_id = *bytes;
  wrong_id.replace(4, 4, "XYZ9");
  absl::StatusOr<TfliteGraph> g = DescribeTfliteModel(wrong_id);
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(g.status().message()), HasSubstr("TFL3"));
  std::string bad_root = *bytes;
  bad_root[2] = '\x7f';  // the root table offset now points far past the end
  expect_invalid(bad_root, "root offset out of range");
}

TEST(TfliteReaderTest, MissingFileIsNotFound) {
  absl::StatusOr<TfliteGraph> g = ReadTfliteFile("/nonexistent/model.tflite");
  EXPECT_EQ(g.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(g.status().message()), HasSubstr("/nonexistent/model.tflite"));
}

// Writes a two-op model with the generated object API, as the exporter will, and reads it back.
TEST(TfliteReaderTest, ReadsAModelWrittenWithTheSchemaSubset) {
  tflite::ModelT model;
  model.version = 3;
  model.description = "nanonas test";
  model.buffers.push_back(std::make_unique<tflite::BufferT>());  // sentinel
  auto weights = std::make_unique<tflite::BufferT>();
  weights->data.assign(2 * 3 * 3 * 1, 1);
  model.buffers.push_back(std::move(weights));
  for (tflite::BuiltinOperator op :
       {tflite::BuiltinOperator_CONV_2D, tflite::BuiltinOperator_QUANTIZE}) {
    auto code = std::make_unique<tflite::OperatorCodeT>();
    code->builtin_code = op;
    code->deprecated_builtin_code = static_cast<int8_t>(op);
    model.operator_codes.push_back(std::move(code));
  }
  auto sg = std::make_unique<tflite::SubGraphT>();
  auto tensor = [&](std::vector<int> shape, tflite::TensorType type, uint32_t buffer,
                    std::vector<float> scale, std::vector<int64_t> zp) {
    auto t = std::make_unique<tflite::TensorT>();
    t->shape = std::move(shape);
    t->type = type;
    t->buffer = buffer;
    t->name = "t" + std::to_string(sg->tensors.size());
    t->quantization = std::make_unique<tflite::QuantizationParametersT>();
    t->quantization->scale = std::move(scale);
    t->quantization->zero_point = std::move(zp);
    sg->tensors.push_back(std::move(t));
  };
  tensor({1, 4, 4, 1}, tflite::TensorType_INT8, 0, {0.5f}, {-128});
  tensor({2, 3, 3, 1}, tflite::TensorType_INT8, 1, {0.1f, 0.2f}, {0, 0});
  tensor({1, 4, 4, 2}, tflite::TensorType_INT8, 0, {0.25f}, {-128});
  tensor({1, 4, 4, 2}, tflite::TensorType_UINT8, 0, {0.25f}, {0});
  sg->inputs = {0};
  sg->outputs = {3};
  auto conv = std::make_unique<tflite::OperatorT>();
  conv->opcode_index = 0;
  conv->inputs = {0, 1, -1};
  conv->outputs = {2};
  tflite::Conv2DOptionsT conv_options;
  conv_options.padding = tflite::Padding_SAME;
  conv_options.stride_h = conv_options.stride_w = 1;
  conv_options.fused_activation_function = tflite::ActivationFunctionType_RELU;
  conv->builtin_options.Set(conv_options);
  sg->operators.push_back(std::move(conv));
  auto quantize = std::make_unique<tflite::OperatorT>();
  quantize->opcode_index = 1;
  quantize->inputs = {2};
  quantize->outputs = {3};
  sg->operators.push_back(std::move(quantize));
  model.subgraphs.push_back(std::move(sg));

  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(tflite::Model::Pack(fbb, &model), tflite::ModelIdentifier());
  const std::string bytes(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());

  absl::StatusOr<TfliteGraph> g = DescribeTfliteModel(bytes);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->description, "nanonas test");
  ASSERT_EQ(g->ops.size(), 2u);
  EXPECT_EQ(g->ops[0].op, "CONV_2D");
  EXPECT_EQ(g->ops[0].builtin_code, 3);
  EXPECT_EQ(g->ops[0].options_type, tflite::BuiltinOptions_Conv2DOptions);
  EXPECT_EQ(g->ops[0].padding, "SAME");
  EXPECT_EQ(g->ops[0].activation, "RELU");
  EXPECT_THAT(g->ops[0].inputs, ElementsAre(0, 1, -1));
  EXPECT_EQ(g->ops[1].op, "QUANTIZE");
  EXPECT_EQ(g->ops[1].builtin_code, 114);
  EXPECT_TRUE(g->tensors[1].is_constant());
  EXPECT_EQ(g->tensors[1].constant_bytes, 18);
  EXPECT_THAT(g->tensors[1].quantization.scale, ElementsAre(0.1f, 0.2f));
  EXPECT_EQ(g->tensors[3].type, tflite::TensorType_UINT8);
  EXPECT_EQ(g->file_bytes, static_cast<int64_t>(bytes.size()));

  // Wire ids that real TFLite files rely on.
  EXPECT_EQ(static_cast<int>(tflite::BuiltinOptions_ReducerOptions), 27);
  EXPECT_EQ(static_cast<int>(tflite::BuiltinOptions_QuantizeOptions), 89);
  EXPECT_EQ(static_cast<int>(tflite::BuiltinOperator_MEAN), 40);
  EXPECT_EQ(static_cast<int>(tflite::TensorType_INT8), 9);

  // A tensor index out of range is refused with the op named.
  tflite::ModelT broken;
  tflite::GetModel(bytes.data())->UnPackTo(&broken);
  broken.subgraphs[0]->operators[1]->inputs = {7};
  flatbuffers::FlatBufferBuilder fbb2;
  fbb2.Finish(tflite::Model::Pack(fbb2, &broken), tflite::ModelIdentifier());
  absl::StatusOr<TfliteGraph> b = DescribeTfliteModel(
      std::string(reinterpret_cast<const char*>(fbb2.GetBufferPointer()), fbb2.GetSize()));
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("op 1"));
}

TEST(TfliteReaderTest, NamesOutsideTheSubset) {
  EXPECT_EQ(BuiltinOperatorName(3), "CONV_2D");
  EXPECT_EQ(BuiltinOperatorName(150), "BUILTIN_150");
  EXPECT_EQ(BuiltinOperatorName(-1), "BUILTIN_-1");
  EXPECT_EQ(TensorTypeBytes(tflite::TensorType_INT32), 4);
  EXPECT_EQ(TensorTypeBytes(tflite::TensorType_INT64), 8);
}

}  // namespace
}  // namespace nanonas
