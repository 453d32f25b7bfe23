/*
 * Fine-tune a model written by `keras-edge export` on the device, in C, through the
 * LiteRT C API of libLiteRt.so (shipped in the ai-edge-litert wheel; no TensorFlow,
 * no Flex delegate). This is what a Jetson or any Linux app would do:
 *
 *   keras_edge_train MODEL.tflite IMAGES.idx LABELS.idx STEPS
 *                    [--restore FILE] [--save FILE] [--learning-rate R]
 *
 * IMAGES.idx / LABELS.idx: uncompressed IDX files (as Fashion-MNIST's, after gunzip):
 * uint8 images N x H x W [x C] and uint8 labels N. Each step trains one batch through
 * the `train` signature, in file order; the batch at the end of the file is padded
 * with weight-0 examples, as a short batch must be. --restore/--save read and write
 * the weights with `get_weights`/`set_weights` in a small file: "KEW1", the model's
 * four int32 fingerprint words, an int32 count, then the float32 weights. Weights of
 * another model are refused with a clear message (exit 2), never a crash.
 *
 * Build (see README.md): gcc -O2 -o keras_edge_train keras_edge_train.c -L$LIB -lLiteRt -Wl,-rpath,$LIB
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- The few LiteRT C API declarations this program needs (see litert/c in LiteRT). ---- */
typedef int LiteRtStatus; /* 0: ok */
typedef size_t LiteRtParamIndex;
typedef struct LiteRtEnvironmentT *LiteRtEnvironment;
typedef struct LiteRtModelT *LiteRtModel;
typedef struct LiteRtSignatureT *LiteRtSignature;
typedef struct LiteRtTensorT *LiteRtTensor;
typedef struct LiteRtOptionsT *LiteRtOptions;
typedef struct LiteRtCompiledModelT *LiteRtCompiledModel;
typedef struct LiteRtTensorBufferT *LiteRtTensorBuffer;
typedef struct {
  unsigned int rank : 7;
  unsigned int has_strides : 1;
  int32_t dimensions[8];
  uint32_t strides[8];
} LiteRtLayout; /* ABI-stable, 68 bytes */
typedef struct {
  int element_type; /* 1: float32, 2: int32 */
  LiteRtLayout layout;
} LiteRtRankedTensorType; /* ABI-stable, 72 bytes */
enum { kFloat32 = 1, kInt32 = 2, kHwAcceleratorCpu = 1 };

LiteRtStatus LiteRtCreateEnvironment(int num_options, const void *options, LiteRtEnvironment *env);
void LiteRtDestroyEnvironment(LiteRtEnvironment env);
LiteRtStatus LiteRtCreateModelFromFile(LiteRtEnvironment env, const char *filename, LiteRtModel *model);
void LiteRtDestroyModel(LiteRtModel model);
LiteRtStatus LiteRtGetNumModelSignatures(LiteRtModel model, LiteRtParamIndex *num);
LiteRtStatus LiteRtGetModelSignature(LiteRtModel model, LiteRtParamIndex index, LiteRtSignature *signature);
LiteRtStatus LiteRtGetSignatureKey(LiteRtSignature signature, const char **key);
LiteRtStatus LiteRtGetNumSignatureInputs(LiteRtSignature signature, LiteRtParamIndex *num);
LiteRtStatus LiteRtGetNumSignatureOutputs(LiteRtSignature signature, LiteRtParamIndex *num);
LiteRtStatus LiteRtGetSignatureInputName(LiteRtSignature signature, LiteRtParamIndex i, const char **name);
LiteRtStatus LiteRtGetSignatureOutputName(LiteRtSignature signature, LiteRtParamIndex i, const char **name);
LiteRtStatus LiteRtGetSignatureInputTensorByIndex(LiteRtSignature signature, LiteRtParamIndex i, LiteRtTensor *t);
LiteRtStatus LiteRtGetSignatureOutputTensorByIndex(LiteRtSignature signature, LiteRtParamIndex i, LiteRtTensor *t);
LiteRtStatus LiteRtGetRankedTensorType(LiteRtTensor tensor, LiteRtRankedTensorType *type);
LiteRtStatus LiteRtCreateOptions(LiteRtOptions *options);
void LiteRtDestroyOptions(LiteRtOptions options);
LiteRtStatus LiteRtSetOptionsHardwareAccelerators(LiteRtOptions options, int accelerators);
LiteRtStatus LiteRtCreateCompiledModel(LiteRtEnvironment env, LiteRtModel model, LiteRtOptions options,
                                       LiteRtCompiledModel *compiled);
void LiteRtDestroyCompiledModel(LiteRtCompiledModel compiled);
LiteRtStatus LiteRtCompiledModelResizeInputTensor(LiteRtCompiledModel compiled, LiteRtParamIndex signature,
                                                  LiteRtParamIndex input, const int *dims, size_t rank);
LiteRtStatus LiteRtCreateTensorBufferFromHostMemory(const LiteRtRankedTensorType *type, void *addr, size_t size,
                                                    void (*deallocator)(void *), LiteRtTensorBuffer *buffer);
void LiteRtDestroyTensorBuffer(LiteRtTensorBuffer buffer);
LiteRtStatus LiteRtRunCompiledModel(LiteRtCompiledModel compiled, LiteRtParamIndex signature, size_t num_inputs,
                                    LiteRtTensorBuffer *inputs, size_t num_outputs, LiteRtTensorBuffer *outputs);

/* ---- Helpers ---- */
#define MAX_TENSORS 512

static void die(int code, const char *message, const char *detail) {
  fprintf(stderr, "error: %s%s\n", message, detail ? detail : "");
  exit(code);
}

static void check(LiteRtStatus status, const char *what) {
  if (status != 0) {
    fprintf(stderr, "error: LiteRT call %s failed with status %d\n", what, status);
    exit(1);
  }
}

/* One signature's tensors: host memory we own, wrapped in LiteRT tensor buffers. */
typedef struct {
  LiteRtParamIndex index;
  size_t count[2];                      /* inputs, outputs */
  const char *names[2][MAX_TENSORS];
  LiteRtRankedTensorType types[2][MAX_TENSORS];
  void *data[2][MAX_TENSORS];
  LiteRtTensorBuffer buffers[2][MAX_TENSORS];
} Signature;

static size_t elements(const LiteRtRankedTensorType *type) {
  size_t n = 1;
  for (unsigned i = 0; i < type->layout.rank; i++) n *= (size_t)type->layout.dimensions[i];
  return n;
}

/* (Re)create the buffer of tensor `i` of `side` (0 input, 1 output) for its current shape. */
static void make_buffer(Signature *s, int side, size_t i) {
  if (s->buffers[side][i]) LiteRtDestroyTensorBuffer(s->buffers[side][i]);
  free(s->data[side][i]);
  size_t bytes = elements(&s->types[side][i]) * 4; /* float32 and int32 only */
  size_t padded = (bytes + 63) / 64 * 64;          /* LiteRT wants 64-byte aligned host memory */
  s->data[side][i] = aligned_alloc(64, padded ? padded : 64);
  memset(s->data[side][i], 0, padded ? padded : 64);
  check(LiteRtCreateTensorBufferFromHostMemory(&s->types[side][i], s->data[side][i], bytes, NULL, &s->buffers[side][i]),
        "LiteRtCreateTensorBufferFromHostMemory");
}

static Signature *open_signature(LiteRtModel model, const char *key) {
  LiteRtParamIndex n;
  check(LiteRtGetNumModelSignatures(model, &n), "LiteRtGetNumModelSignatures");
  for (LiteRtParamIndex k = 0; k < n; k++) {
    LiteRtSignature signature;
    const char *name;
    check(LiteRtGetModelSignature(model, k, &signature), "LiteRtGetModelSignature");
    check(LiteRtGetSignatureKey(signature, &name), "LiteRtGetSignatureKey");
    if (strcmp(name, key) != 0) continue;
    Signature *s = calloc(1, sizeof(Signature));
    s->index = k;
    check(LiteRtGetNumSignatureInputs(signature, &s->count[0]), "LiteRtGetNumSignatureInputs");
    check(LiteRtGetNumSignatureOutputs(signature, &s->count[1]), "LiteRtGetNumSignatureOutputs");
    if (s->count[0] > MAX_TENSORS || s->count[1] > MAX_TENSORS) die(2, "too many tensors in signature ", key);
    for (int side = 0; side < 2; side++) {
      for (size_t i = 0; i < s->count[side]; i++) {
        LiteRtTensor tensor;
        if (side == 0) {
          check(LiteRtGetSignatureInputName(signature, i, &s->names[0][i]), "LiteRtGetSignatureInputName");
          check(LiteRtGetSignatureInputTensorByIndex(signature, i, &tensor), "LiteRtGetSignatureInputTensorByIndex");
        } else {
          check(LiteRtGetSignatureOutputName(signature, i, &s->names[1][i]), "LiteRtGetSignatureOutputName");
          check(LiteRtGetSignatureOutputTensorByIndex(signature, i, &tensor), "LiteRtGetSignatureOutputTensorByIndex");
        }
        check(LiteRtGetRankedTensorType(tensor, &s->types[side][i]), "LiteRtGetRankedTensorType");
        LiteRtLayout *layout = &s->types[side][i].layout;
        for (unsigned d = 0; d < layout->rank; d++)
          if (layout->dimensions[d] < 0) layout->dimensions[d] = 1; /* dynamic: resized before use */
        make_buffer(s, side, i);
      }
    }
    return s;
  }
  die(2, "the model has no signature ", key);
  return NULL;
}

static size_t find(const Signature *s, int side, const char *name) {
  for (size_t i = 0; i < s->count[side]; i++)
    if (strcmp(s->names[side][i], name) == 0) return i;
  die(2, "the model lacks the tensor ", name);
  return 0;
}

static void *tensor(const Signature *s, int side, const char *name) { return s->data[side][find(s, side, name)]; }

/* Give a dynamic one-dimensional input `length` elements (set_weights' weights, fingerprint). */
static void resize_input(LiteRtCompiledModel compiled, Signature *s, const char *name, int length) {
  size_t i = find(s, 0, name);
  check(LiteRtCompiledModelResizeInputTensor(compiled, s->index, i, &length, 1), "LiteRtCompiledModelResizeInputTensor");
  s->types[0][i].layout.dimensions[0] = length;
  make_buffer(s, 0, i);
}

static void run(LiteRtCompiledModel compiled, Signature *s) {
  check(LiteRtRunCompiledModel(compiled, s->index, s->count[0], s->buffers[0], s->count[1], s->buffers[1]),
        "LiteRtRunCompiledModel");
}

/* An uncompressed IDX file of uint8: returns the data, the number of items and item size. */
static uint8_t *read_idx(const char *path, size_t *items, size_t *item_size) {
  FILE *f = fopen(path, "rb");
  if (!f) die(2, "cannot open ", path);
  uint8_t head[4];
  if (fread(head, 1, 4, f) != 4 || head[0] || head[1] || head[2] != 8 || head[3] < 1 || head[3] > 4)
    die(2, "not an uncompressed uint8 IDX file (gunzip it first): ", path);
  size_t dims[4], size = 1;
  for (int d = 0; d < head[3]; d++) {
    uint8_t b[4];
    if (fread(b, 1, 4, f) != 4) die(2, "truncated IDX header: ", path);
    dims[d] = (size_t)b[0] << 24 | (size_t)b[1] << 16 | (size_t)b[2] << 8 | b[3];
    if (d) size *= dims[d];
  }
  uint8_t *data = malloc(dims[0] * size + 1);
  if (fread(data, 1, dims[0] * size, f) != dims[0] * size) die(2, "truncated IDX data: ", path);
  fclose(f);
  *items = dims[0];
  *item_size = size;
  return data;
}

static void save_weights(LiteRtCompiledModel compiled, Signature *get, const char *path) {
  *(int32_t *)tensor(get, 0, "dummy") = 0;
  run(compiled, get);
  size_t w = find(get, 1, "weights");
  int32_t n = (int32_t)elements(&get->types[1][w]);
  FILE *f = fopen(path, "wb");
  if (!f) die(2, "cannot write ", path);
  fwrite("KEW1", 1, 4, f);
  fwrite(tensor(get, 1, "fingerprint"), 4, 4, f);
  fwrite(&n, 4, 1, f);
  fwrite(get->data[1][w], 4, (size_t)n, f);
  fclose(f);
}

static void restore_weights(LiteRtCompiledModel compiled, Signature *set, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) die(2, "cannot open ", path);
  char magic[4];
  int32_t fingerprint[4], n;
  if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "KEW1", 4) != 0 || fread(fingerprint, 4, 4, f) != 4 ||
      fread(&n, 4, 1, f) != 1 || n < 0 || n > (1 << 28))
    die(2, "not a weights file written by --save: ", path);
  resize_input(compiled, set, "weights", n);
  resize_input(compiled, set, "fingerprint", 4);
  if (fread(tensor(set, 0, "weights"), 4, (size_t)n, f) != (size_t)n) die(2, "truncated weights file: ", path);
  fclose(f);
  memcpy(tensor(set, 0, "fingerprint"), fingerprint, sizeof fingerprint);
  run(compiled, set);
  int32_t status = *(int32_t *)tensor(set, 1, "status");
  if (status == 1) die(2, "the weights belong to another model (fingerprint differs); nothing restored: ", path);
  if (status != 0) die(2, "the weights file has the wrong number of weights for this model; nothing restored: ", path);
  printf("restored %d weights from %s\n", n, path);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s MODEL.tflite IMAGES.idx LABELS.idx STEPS [--restore FILE] [--save FILE] "
                    "[--learning-rate R]\n", argv[0]);
    return 2;
  }
  const char *restore = NULL, *save = NULL;
  float learning_rate = 0.0f; /* 0: the rate the model was exported with */
  for (int a = 5; a + 1 < argc; a += 2) {
    if (!strcmp(argv[a], "--restore")) restore = argv[a + 1];
    else if (!strcmp(argv[a], "--save")) save = argv[a + 1];
    else if (!strcmp(argv[a], "--learning-rate")) learning_rate = strtof(argv[a + 1], NULL);
    else die(2, "unknown option ", argv[a]);
  }
  int steps = atoi(argv[4]);

  LiteRtEnvironment env;
  LiteRtModel model;
  LiteRtOptions options;
  LiteRtCompiledModel compiled;
  check(LiteRtCreateEnvironment(0, NULL, &env), "LiteRtCreateEnvironment");
  if (LiteRtCreateModelFromFile(env, argv[1], &model) != 0) die(2, "cannot load the model ", argv[1]);
  check(LiteRtCreateOptions(&options), "LiteRtCreateOptions");
  check(LiteRtSetOptionsHardwareAccelerators(options, kHwAcceleratorCpu), "LiteRtSetOptionsHardwareAccelerators");
  check(LiteRtCreateCompiledModel(env, model, options, &compiled), "LiteRtCreateCompiledModel");
  Signature *train = open_signature(model, "train"), *get = open_signature(model, "get_weights");
  Signature *set = open_signature(model, "set_weights");
  if (restore) restore_weights(compiled, set, restore);

  size_t x = find(train, 0, "x");
  int batch = train->types[0][x].layout.dimensions[0];
  size_t image_size = elements(&train->types[0][x]) / (size_t)batch, n, item, n_labels, one;
  uint8_t *images = read_idx(argv[2], &n, &item), *labels = read_idx(argv[3], &n_labels, &one);
  if (item != image_size) die(2, "the images do not have the size the model takes: ", argv[2]);
  if (n_labels != n || one != 1) die(2, "the labels file does not match the images: ", argv[3]);

  float *xs = tensor(train, 0, "x"), *weight = tensor(train, 0, "sample_weight");
  int32_t *ys = tensor(train, 0, "y");
  *(float *)tensor(train, 0, "learning_rate") = learning_rate;
  if (train->count[0] != 4) die(2, "train takes runtime masks; this client passes none (export without --runtime-masks)", "");
  size_t position = 0;
  for (int step = 0; step < steps; step++) {
    size_t real = n - position < (size_t)batch ? n - position : (size_t)batch;
    for (int b = 0; b < batch; b++) {
      size_t src = (size_t)b < real ? position + b : position; /* padding repeats an image at weight 0 */
      for (size_t p = 0; p < image_size; p++) xs[b * image_size + p] = images[src * image_size + p] / 255.0f;
      ys[b] = labels[src];
      weight[b] = (size_t)b < real ? 1.0f : 0.0f;
    }
    position = position + real == n ? 0 : position + real;
    run(compiled, train);
    printf("step %d loss %.5f examples_used %d bad_labels %d bad_images %d applied %d\n", step + 1,
           *(float *)tensor(train, 1, "loss"), *(int32_t *)tensor(train, 1, "examples_used"),
           *(int32_t *)tensor(train, 1, "bad_labels"), *(int32_t *)tensor(train, 1, "bad_images"),
           *(int32_t *)tensor(train, 1, "applied"));
  }
  if (save) {
    save_weights(compiled, get, save);
    printf("saved weights to %s\n", save);
  }
  LiteRtDestroyCompiledModel(compiled);
  LiteRtDestroyOptions(options);
  LiteRtDestroyModel(model);
  LiteRtDestroyEnvironment(env);
  return 0;
}
