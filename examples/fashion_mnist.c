/* fashion_mnist: the main job. Trains a LeNet-style CNN on Fashion-MNIST
 *   conv 1->32 3x3 pad 1, relu, maxpool 2; conv 32->64 3x3 pad 1, relu,
 *   maxpool 2; flatten; linear 3136->128, relu; linear 128->10
 * with a progress bar on stderr, evaluates on the test set each epoch, writes
 * the metrics per epoch to a CSV, saves a checkpoint (and the optimizer state
 * beside it), and can reload it to evaluate or to resume training.
 *
 *   make demo                       (fetches the data, builds, trains 3 epochs)
 *   build/examples/fashion_mnist --help */
#include "lenet.h"
#include "nn/nn.h"
#include "tgrad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct options {
    const char *data, *csv, *checkpoint, *optimizer, *schedule;
    int64_t epochs, batch, limit;
    double lr;
    uint64_t seed;
    int threads;
    bool resume, eval_only, quiet;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fashion_mnist [options]\n"
            "  --data DIR         folder with the four IDX files, raw (default build/data/fashion-mnist)\n"
            "  --epochs N         epochs to train (default 3)\n"
            "  --batch N          batch size (default 64)\n"
            "  --lr X             learning rate (default: adam/adamw 1e-3, sgd 0.01)\n"
            "  --optimizer NAME   adam, adamw or sgd (momentum 0.9) (default adam)\n"
            "  --schedule NAME    cosine (per step, to 0), step (x0.1 every 2 epochs) or none\n"
            "                     (default cosine)\n"
            "  --seed N           seed for init and shuffling (default 0)\n"
            "  --threads N        kernel threads (default TG_NUM_THREADS or all cores)\n"
            "  --csv PATH         per-epoch metrics (default build/fashion_mnist.csv)\n"
            "  --checkpoint PATH  model checkpoint (default build/fashion_mnist.safetensors);\n"
            "                     the optimizer state goes to PATH.optim\n"
            "  --resume           continue training from the checkpoint and optimizer state\n"
            "  --eval             only evaluate the checkpoint on the test set\n"
            "  --limit N          train on the first N images only (quick runs)\n"
            "  --quiet            no progress bar\n");
}

static bool parse_int(const char *s, int64_t lo, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < lo)
        return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.data = "build/data/fashion-mnist", .csv = "build/fashion_mnist.csv",
                   .checkpoint = "build/fashion_mnist.safetensors", .optimizer = "adam",
                   .schedule = "cosine", .epochs = 3, .batch = 64};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        bool ok = true, takes = true;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--resume")) {
            o->resume = true, takes = false;
        } else if (!strcmp(a, "--eval")) {
            o->eval_only = true, takes = false;
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = true, takes = false;
        } else if (!v) {
            ok = false;
        } else if (!strcmp(a, "--data")) {
            o->data = v;
        } else if (!strcmp(a, "--csv")) {
            o->csv = v;
        } else if (!strcmp(a, "--checkpoint")) {
            o->checkpoint = v;
        } else if (!strcmp(a, "--optimizer")) {
            o->optimizer = v;
            ok = !strcmp(v, "adam") || !strcmp(v, "adamw") || !strcmp(v, "sgd");
        } else if (!strcmp(a, "--schedule")) {
            o->schedule = v;
            ok = !strcmp(v, "cosine") || !strcmp(v, "step") || !strcmp(v, "none");
        } else if (!strcmp(a, "--epochs")) {
            ok = parse_int(v, 0, &o->epochs);
        } else if (!strcmp(a, "--batch")) {
            ok = parse_int(v, 1, &o->batch);
        } else if (!strcmp(a, "--limit")) {
            ok = parse_int(v, 1, &o->limit);
        } else if (!strcmp(a, "--seed")) {
            ok = parse_int(v, 0, &n);
            o->seed = (uint64_t)n;
        } else if (!strcmp(a, "--threads")) {
            ok = parse_int(v, 1, &n) && n <= 1024;
            o->threads = (int)n;
        } else if (!strcmp(a, "--lr")) {
            char *end;
            o->lr = strtod(v, &end);
            ok = end != v && !*end && o->lr > 0;
        } else {
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, "fashion_mnist: bad option or value: %s%s%s\n", a, v && takes ? " " : "",
                    v && takes ? v : "");
            usage(stderr);
            return 2;
        }
        if (takes)
            i++;
    }
    if (o->lr == 0)
        o->lr = strcmp(o->optimizer, "sgd") ? 1e-3 : 0.01;
    return 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Correct predictions in a batch of logits [b, 10]. */
static int64_t n_correct(const tg_tensor *logits, const int64_t *labels)
{
    const float *z = tg_tensor_data(logits);
    int64_t b = tg_tensor_shape(logits)[0], c = tg_tensor_shape(logits)[1], ok = 0;
    for (int64_t i = 0; i < b; i++) {
        int64_t best = 0;
        for (int64_t j = 1; j < c; j++)
            if (z[i * c + j] > z[i * c + best])
                best = j;
        ok += best == labels[i];
    }
    return ok;
}

static int evaluate(tg_nn_module *m, const tg_nn_dataset *test, double *loss, double *acc)
{
    /* Batch 100 keeps the no-grad pass's activations small (peak memory). */
    tg_nn_loader *l = tg_nn_loader_new(test, 100, false, 0);
    tg_graph *g = tg_graph_new();
    if (!l || !g) {
        tg_nn_loader_free(l);
        tg_graph_free(g);
        return tg_last_status();
    }
    tg_graph_set_no_grad(g, true);
    tg_nn_train(m, false);
    double sum = 0;
    int64_t ok = 0, seen = 0;
    const int64_t *labels;
    int rc = TG_OK;
    for (;;) {
        tg_graph_reset(g);
        tg_tensor *x = tg_nn_loader_next(l, g, &labels);
        if (!x)
            break;
        tg_tensor *z = tg_nn_forward(m, g, x);
        tg_tensor *ce = tg_cross_entropy_ex(g, z, labels, TG_REDUCTION_SUM);
        if (!ce) {
            rc = tg_last_status();
            break;
        }
        sum += tg_tensor_get(ce, 0);
        ok += n_correct(z, labels);
        seen += tg_tensor_shape(x)[0];
    }
    tg_nn_train(m, true);
    tg_graph_free(g);
    tg_nn_loader_free(l);
    *loss = seen ? sum / (double)seen : 0;
    *acc = seen ? (double)ok / (double)seen : 0;
    return rc;
}

static void progress(bool tty, int64_t epoch, int64_t epochs, int64_t b, int64_t nb, double loss,
                     double acc, double ips, double eta)
{
    char bar[31];
    int fill = (int)(30 * b / (nb ? nb : 1));
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "%sepoch %lld/%lld [%s] %lld/%lld loss %.4f acc %5.2f%% %6.0f img/s ETA %d:%02d%s",
            tty ? "\r" : "", (long long)epoch, (long long)epochs, bar, (long long)b, (long long)nb,
            loss, 100 * acc, ips, (int)eta / 60, (int)eta % 60, tty ? "" : "\n");
    fflush(stderr);
}

static int load_data(const options *o, tg_nn_dataset *train, tg_nn_dataset *test)
{
    char a[1024], b[1024];
    /* Fashion-MNIST's normalisation, as ../shared/bench/train_fmnist.py. */
    const double mean = 0.2860, std = 0.3530;
    snprintf(a, sizeof a, "%s/train-images-idx3-ubyte", o->data);
    snprintf(b, sizeof b, "%s/train-labels-idx1-ubyte", o->data);
    if (!o->eval_only && tg_nn_mnist_load(train, a, b, mean, std) != TG_OK)
        return tg_last_status();
    snprintf(a, sizeof a, "%s/t10k-images-idx3-ubyte", o->data);
    snprintf(b, sizeof b, "%s/t10k-labels-idx1-ubyte", o->data);
    if (tg_nn_mnist_load(test, a, b, mean, std) != TG_OK)
        return tg_last_status();
    if (!o->eval_only && o->limit && o->limit < train->n)
        train->n = o->limit;
    return TG_OK;
}

static tg_nn_optim *make_optimizer(const options *o, tg_nn_module *m)
{
    if (!strcmp(o->optimizer, "sgd"))
        return tg_nn_sgd_new(m, (tg_nn_sgd_args){.lr = o->lr, .momentum = 0.9});
    if (!strcmp(o->optimizer, "adamw"))
        return tg_nn_adamw_new(m, (tg_nn_adam_args){.lr = o->lr});
    return tg_nn_adam_new(m, (tg_nn_adam_args){.lr = o->lr});
}

static double scheduled_lr(const options *o, int64_t step, int64_t total_steps, int64_t epoch)
{
    if (!strcmp(o->schedule, "cosine"))
        return tg_nn_lr_cosine(o->lr, 0.0, step, total_steps);
    if (!strcmp(o->schedule, "step"))
        return tg_nn_lr_step(o->lr, epoch, 2, 0.1);
    return o->lr;
}

static int train(const options *o, tg_nn_module *m, tg_nn_optim *opt, const tg_nn_dataset *tr,
                 const tg_nn_dataset *te, int64_t first_epoch)
{
    char optim_path[1100];
    snprintf(optim_path, sizeof optim_path, "%s.optim", o->checkpoint);
    tg_nn_loader *l = tg_nn_loader_new(tr, o->batch, true, o->seed);
    tg_graph *g = tg_graph_new();
    FILE *csv = fopen(o->csv, first_epoch ? "a" : "w");
    if (!l || !g || !csv) {
        if (!csv)
            fprintf(stderr, "fashion_mnist: cannot open %s\n", o->csv);
        tg_nn_loader_free(l);
        tg_graph_free(g);
        if (csv)
            fclose(csv);
        return 1;
    }
    if (!first_epoch)
        fprintf(csv, "epoch,train_seconds,images_per_second,train_loss,train_accuracy,test_loss,"
                     "test_accuracy,lr\n");
    /* Replay the shuffles of the epochs already done, so a resumed run sees
     * the same batches as an uninterrupted one. */
    for (int64_t e = 0; e < first_epoch; e++)
        tg_nn_loader_reset(l);
    bool tty = isatty(fileno(stderr)) && !o->quiet;
    int64_t nb = tg_nn_loader_n_batches(l), total_steps = o->epochs * nb;
    int rc = 0;
    for (int64_t epoch = first_epoch; epoch < o->epochs && rc == 0; epoch++) {
        if (epoch > first_epoch)
            tg_nn_loader_reset(l);
        double t0 = now(), sum = 0, last_print = 0;
        int64_t ok = 0, seen = 0;
        const int64_t *labels;
        for (int64_t b = 0;; b++) {
            tg_graph_reset(g);
            tg_tensor *x = tg_nn_loader_next(l, g, &labels);
            if (!x)
                break;
            tg_nn_optim_set_lr(opt, scheduled_lr(o, epoch * nb + b, total_steps, epoch));
            tg_tensor *z = tg_nn_forward(m, g, x);
            tg_tensor *loss = tg_cross_entropy(g, z, labels);
            tg_nn_optim_zero_grad(opt);
            if (!loss || tg_backward(g, loss) != TG_OK || tg_nn_optim_step(opt) != TG_OK) {
                fprintf(stderr, "\nfashion_mnist: %s\n", tg_last_error());
                rc = 1;
                break;
            }
            int64_t bs = tg_tensor_shape(x)[0];
            sum += tg_tensor_get(loss, 0) * (double)bs;
            ok += n_correct(z, labels);
            seen += bs;
            double t = now() - t0;
            if (!o->quiet && (b + 1 == nb || (tty ? t - last_print > 0.2 : (b + 1) % (nb / 4 + 1) == 0))) {
                double ips = (double)seen / t;
                progress(tty, epoch + 1, o->epochs, b + 1, nb, sum / (double)seen,
                         (double)ok / (double)seen, ips, (double)(tr->n - seen) / ips);
                last_print = t;
            }
        }
        if (rc)
            break;
        double secs = now() - t0, test_loss, test_acc;
        if (tty)
            fputc('\n', stderr);
        double e0 = now();
        if (evaluate(m, te, &test_loss, &test_acc) != TG_OK) {
            fprintf(stderr, "fashion_mnist: evaluation failed: %s\n", tg_last_error());
            rc = 1;
            break;
        }
        printf("epoch %lld: train %.1f s (%.0f img/s) loss %.4f acc %.2f%% | test loss %.4f acc "
               "%.2f%% (eval %.1f s)\n",
               (long long)epoch + 1, secs, (double)seen / secs, sum / (double)seen,
               100.0 * (double)ok / (double)seen, test_loss, 100 * test_acc, now() - e0);
        fflush(stdout);
        fprintf(csv, "%lld,%.3f,%.1f,%.6f,%.6f,%.6f,%.6f,%.8g\n", (long long)epoch + 1, secs,
                (double)seen / secs, sum / (double)seen, (double)ok / (double)seen, test_loss,
                test_acc, tg_nn_optim_lr(opt));
        fflush(csv);
        if (tg_nn_save(m, o->checkpoint) != TG_OK || tg_nn_optim_save(opt, optim_path) != TG_OK) {
            fprintf(stderr, "fashion_mnist: %s\n", tg_last_error());
            rc = 1;
        }
    }
    fclose(csv);
    tg_graph_free(g);
    tg_nn_loader_free(l);
    return rc;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    if (o.threads)
        tg_set_num_threads(o.threads);
    tg_nn_dataset train_set = {0}, test_set = {0};
    tg_nn_module *m = NULL;
    tg_nn_optim *opt = NULL;
    if (load_data(&o, &train_set, &test_set) != TG_OK) {
        fprintf(stderr, "fashion_mnist: %s\n(run `make demo` to fetch the data, or pass --data)\n",
                tg_last_error());
        rc = 1;
        goto done;
    }
    m = lenet_new(o.seed, TG_F32);
    opt = m ? make_optimizer(&o, m) : NULL;
    if (!m || !opt) {
        fprintf(stderr, "fashion_mnist: %s\n", tg_last_error());
        rc = 1;
        goto done;
    }
    int64_t in_shape[] = {o.batch, 1, 28, 28};
    printf("# tgrad fashion_mnist: %lld train / %lld test images, batch %lld, %s lr %g (%s), seed "
           "%llu, %d threads\n",
           (long long)train_set.n, (long long)test_set.n, (long long)o.batch, o.optimizer, o.lr,
           o.schedule, (unsigned long long)o.seed, tg_num_threads());
    tg_nn_summary(m, stdout, TG_F32, 4, in_shape);
    int64_t first_epoch = 0;
    if (o.resume || o.eval_only) {
        char optim_path[1100];
        snprintf(optim_path, sizeof optim_path, "%s.optim", o.checkpoint);
        if (tg_nn_load(m, o.checkpoint) != TG_OK ||
            (o.resume && tg_nn_optim_load(opt, optim_path) != TG_OK)) {
            fprintf(stderr, "fashion_mnist: %s\n", tg_last_error());
            rc = 1;
            goto done;
        }
        if (o.resume) {
            int64_t nb = (train_set.n + o.batch - 1) / o.batch;
            first_epoch = tg_nn_optim_steps(opt) / nb;
            printf("# resumed from %s after %lld epochs\n", o.checkpoint, (long long)first_epoch);
        }
    }
    if (o.eval_only) {
        double loss, acc;
        if (evaluate(m, &test_set, &loss, &acc) != TG_OK) {
            fprintf(stderr, "fashion_mnist: %s\n", tg_last_error());
            rc = 1;
        } else {
            printf("test loss %.4f accuracy %.2f%% (%lld images, checkpoint %s)\n", loss, 100 * acc,
                   (long long)test_set.n, o.checkpoint);
        }
        goto done;
    }
    rc = train(&o, m, opt, &train_set, &test_set, first_epoch);
    if (rc == 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("# checkpoint %s, metrics %s, peak resident memory %.0f MiB\n", o.checkpoint, o.csv,
               (double)ru.ru_maxrss / 1024.0);
    }
done:
    tg_nn_optim_free(opt);
    tg_nn_module_free(m);
    tg_nn_dataset_free(&train_set);
    tg_nn_dataset_free(&test_set);
    return rc;
}
