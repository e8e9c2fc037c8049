#include "common/api/defaults.h"

#include "nanonas/v1/nanonas.pb.h"

namespace nanonas::defaults {

void FillEvaluationDefaults(nanonas::v1::EvaluationSettings* s) {
  if (s->epochs() == 0) s->set_epochs(kEpochs);
  if (s->batch_size() == 0) s->set_batch_size(kBatchSize);
  if (s->learning_rate() == 0) s->set_learning_rate(kLearningRate);
  if (s->seed() == 0) s->set_seed(kSeed);
}

void FillFinalTrainingDefaults(nanonas::v1::FinalTrainingSettings* s) {
  if (s->epochs() == 0) s->set_epochs(kFinalEpochs);
  if (s->batch_size() == 0) s->set_batch_size(kFinalBatchSize);
  if (s->learning_rate() == 0) s->set_learning_rate(kFinalLearningRate);
}

nanonas::v1::JobSpec DefaultJobSpec() {
  nanonas::v1::JobSpec spec;
  spec.mutable_input()->set_height(kInputHeight);
  spec.mutable_input()->set_width(kInputWidth);
  spec.mutable_input()->set_channels(kInputChannels);
  spec.set_validation_split(kValidationSplit);
  spec.set_variant(kVariant);
  FillEvaluationDefaults(spec.mutable_evaluation());
  FillFinalTrainingDefaults(spec.mutable_final_training());
  return spec;
}

}  // namespace nanonas::defaults
