/* STFT (libavutil av_tx real FFT) and mel filter banks; see fd_mel.h. */
#include <libavutil/mem.h>
#include <libavutil/tx.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fd_mel.h"

void fd_mel_defaults(fd_mel_opts *o)
{
    if (!o->n_fft) o->n_fft = 400;
    if (!o->win_length) o->win_length = o->n_fft;
    if (!o->hop) o->hop = o->win_length / 2;
    if (!o->window) o->window = "hann";
    if (!o->power) o->power = 2.0;
    if (!o->n_mels) o->n_mels = 80;
    if (!o->mel_scale) o->mel_scale = "htk";
    if (!o->log) o->log = "ln";
    if (!o->floor) o->floor = 1e-10;
}

static int check_opts(const fd_mel_opts *o, int need_mel)
{
    if (o->n_fft < 2 || o->n_fft > (1 << 20)) return fd_fail("mel: n_fft %d out of range (2..2^20)", o->n_fft);
    if (o->win_length < 1 || o->win_length > o->n_fft)
        return fd_fail("mel: win_length %d must be in 1..n_fft (%d)", o->win_length, o->n_fft);
    if (o->hop < 1) return fd_fail("mel: hop %d must be positive", o->hop);
    if (o->power != 1.0 && o->power != 2.0) return fd_fail("mel: power %g (1 or 2)", o->power);
    if (strcmp(o->window, "hann") && strcmp(o->window, "hamming") && strcmp(o->window, "rect"))
        return fd_fail("mel: window '%s' (hann, hamming or rect)", o->window);
    if (!need_mel) return FD_OK;
    if (o->sample_rate < 1) return fd_fail("mel: sample_rate %d must be positive", o->sample_rate);
    if (o->n_mels < 1 || o->n_mels > 4096) return fd_fail("mel: n_mels %d out of range (1..4096)", o->n_mels);
    double f_hi = o->fmax > 0 ? o->fmax : o->sample_rate / 2.0;
    if (o->fmin < 0 || o->fmin >= f_hi) return fd_fail("mel: fmin %g must be in [0, fmax = %g)", o->fmin, f_hi);
    if (strcmp(o->mel_scale, "htk") && strcmp(o->mel_scale, "slaney"))
        return fd_fail("mel: mel_scale '%s' (htk or slaney)", o->mel_scale);
    if (o->norm && strcmp(o->norm, "none") && strcmp(o->norm, "slaney"))
        return fd_fail("mel: norm '%s' (none or slaney)", o->norm);
    if (strcmp(o->log, "none") && strcmp(o->log, "ln") && strcmp(o->log, "log10") && strcmp(o->log, "db"))
        return fd_fail("mel: log '%s' (none, ln, log10 or db)", o->log);
    if (!(o->floor > 0)) return fd_fail("mel: floor %g must be positive", o->floor);
    return FD_OK;
}

/* The periodic window of win_length, centred in n_fft zeros (torch.stft). */
static void make_window(float *w, const fd_mel_opts *o)
{
    int n = o->n_fft, wl = o->win_length, left = (n - wl) / 2;
    memset(w, 0, sizeof *w * (size_t)n);
    for (int i = 0; i < wl; i++) {
        double x = 2 * M_PI * i / wl, v = 1.0;
        if (!strcmp(o->window, "hann")) v = 0.5 - 0.5 * cos(x);
        else if (!strcmp(o->window, "hamming")) v = 0.54 - 0.46 * cos(x);
        w[left + i] = (float)v;
    }
}

int fd_spectrogram(fd_tensor *out, const fd_tensor *wave, const fd_mel_opts *o)
{
    fd_tensor_release(out);
    if (check_opts(o, 0)) return FD_ERR;
    if (!fd_dtype_is_float(wave->dtype) || wave->ndim != 1)
        return fd_fail("mel: expected a float waveform [N], got %s %s", fd_dtype_name(wave->dtype), FD_SHAPE_STR(wave));
    int64_t n = wave->shape[0], nfft = o->n_fft, pad = o->center ? nfft / 2 : 0;
    if (o->center && n <= pad)
        return fd_fail("mel: reflect padding of %lld needs more than %lld samples, got %lld", (long long)pad,
                       (long long)pad, (long long)n);
    if (n + 2 * pad < nfft)
        return fd_fail("mel: %lld samples are fewer than n_fft %lld", (long long)n, (long long)nfft);
    int64_t frames = 1 + (n + 2 * pad - nfft) / o->hop, nfreq = nfft / 2 + 1;
    fd_tensor x = {0};
    if (fd_tensor_to_dtype(&x, wave, FD_F32)) return FD_ERR;
    fd_tensor xc = {0};
    int r = fd_tensor_contiguous(&xc, &x);
    fd_tensor_release(&x);
    if (r) return FD_ERR;
    const float *src = fd_tensor_data(&xc);
    AVTXContext *tx = NULL;
    av_tx_fn fn;
    float scale = 1.0f;
    /* Real FFT for even sizes; odd sizes take the complex FFT of size n. */
    int real = nfft % 2 == 0 && av_tx_init(&tx, &fn, AV_TX_FLOAT_RDFT, 0, (int)nfft, &scale, 0) >= 0;
    if (!real && av_tx_init(&tx, &fn, AV_TX_FLOAT_FFT, 0, (int)nfft, &scale, 0) < 0) {
        fd_tensor_release(&xc);
        return fd_fail("mel: av_tx cannot make an FFT of size %lld", (long long)nfft);
    }
    float *win = av_malloc(sizeof *win * (size_t)nfft);
    float *in = av_mallocz(sizeof(float) * 2 * (size_t)(nfft + 2)); /* zeroed: the RDFT reads past n_fft (seen as inf power from stale heap memory) */
    AVComplexFloat *spec = av_mallocz(sizeof *spec * (size_t)(nfft + 2));
    if (!win || !in || !spec || fd_tensor_empty(out, FD_F32, 2, (int64_t[]){nfreq, frames})) {
        av_free(win), av_free(in), av_free(spec);
        av_tx_uninit(&tx);
        fd_tensor_release(&xc);
        return out->storage ? FD_ERR : fd_fail("mel: out of memory");
    }
    make_window(win, o);
    float *dst = fd_tensor_data(out);
    for (int64_t f = 0; f < frames; f++) {
        int64_t start = f * o->hop - pad;
        for (int64_t i = 0; i < nfft; i++) {
            int64_t j = start + i;
            if (j < 0) j = -j; /* reflect without repeating the edge */
            if (j >= n) j = 2 * (n - 1) - j;
            float v = src[j] * win[i];
            if (real) in[i] = v;
            else in[2 * i] = v, in[2 * i + 1] = 0;
        }
        fn(tx, spec, in, real ? sizeof(float) : sizeof(AVComplexFloat));
        for (int64_t k = 0; k < nfreq; k++) {
            double re = spec[k].re, im = spec[k].im, p = re * re + im * im;
            dst[k * frames + f] = (float)(o->power == 2.0 ? p : sqrt(p));
        }
    }
    av_free(win), av_free(in), av_free(spec);
    av_tx_uninit(&tx);
    fd_tensor_release(&xc);
    return FD_OK;
}

static double hz_to_mel(double f, int htk)
{
    if (htk) return 2595.0 * log10(1.0 + f / 700.0);
    double f_sp = 200.0 / 3, logstep = log(6.4) / 27.0;
    return f < 1000.0 ? f / f_sp : 1000.0 / f_sp + log(f / 1000.0) / logstep;
}

static double mel_to_hz(double m, int htk)
{
    if (htk) return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
    double f_sp = 200.0 / 3, logstep = log(6.4) / 27.0, min_log_mel = 1000.0 / f_sp;
    return m < min_log_mel ? m * f_sp : 1000.0 * exp(logstep * (m - min_log_mel));
}

int fd_mel_filters(fd_tensor *out, const fd_mel_opts *o)
{
    fd_tensor_release(out);
    if (check_opts(o, 1)) return FD_ERR;
    int nfreq = o->n_fft / 2 + 1, nm = o->n_mels, htk = !strcmp(o->mel_scale, "htk");
    int slaney_norm = o->norm && !strcmp(o->norm, "slaney");
    double f_hi = o->fmax > 0 ? o->fmax : o->sample_rate / 2.0;
    double *fpts = malloc(sizeof *fpts * (size_t)(nm + 2));
    if (!fpts || fd_tensor_empty(out, FD_F32, 2, (int64_t[]){nfreq, nm})) {
        free(fpts);
        return out->storage ? FD_ERR : fd_fail("mel: out of memory");
    }
    double mmin = hz_to_mel(o->fmin, htk), mmax = hz_to_mel(f_hi, htk);
    for (int i = 0; i < nm + 2; i++) fpts[i] = mel_to_hz(mmin + (mmax - mmin) * i / (nm + 1), htk);
    float *fb = fd_tensor_data(out);
    /* torchaudio spaces the FFT bins over [0, sample_rate // 2] (integer division). */
    double top = (double)(o->sample_rate / 2);
    for (int k = 0; k < nfreq; k++) {
        double f = nfreq > 1 ? top * k / (nfreq - 1) : 0;
        for (int m = 0; m < nm; m++) {
            double down = (f - fpts[m]) / (fpts[m + 1] - fpts[m]);
            double up = (fpts[m + 2] - f) / (fpts[m + 2] - fpts[m + 1]);
            double v = fmax(0.0, fmin(down, up));
            if (slaney_norm) v *= 2.0 / (fpts[m + 2] - fpts[m]);
            fb[k * nm + m] = (float)v;
        }
    }
    free(fpts);
    return FD_OK;
}

int fd_log_mel(fd_tensor *out, const fd_tensor *wave, const fd_mel_opts *o)
{
    fd_tensor_release(out);
    fd_tensor spec = {0}, fb = {0};
    if (check_opts(o, 1) || fd_mel_filters(&fb, o) || fd_spectrogram(&spec, wave, o)) {
        fd_tensor_release(&fb);
        return FD_ERR;
    }
    int64_t nfreq = spec.shape[0], frames = spec.shape[1], nm = o->n_mels;
    if (fd_tensor_empty(out, FD_F32, 2, (int64_t[]){nm, frames})) {
        fd_tensor_release(&fb);
        fd_tensor_release(&spec);
        return FD_ERR;
    }
    const float *s = fd_tensor_data(&spec), *w = fd_tensor_data(&fb);
    float *dst = fd_tensor_data(out);
    int mode = !strcmp(o->log, "none") ? 0 : !strcmp(o->log, "ln") ? 1 : !strcmp(o->log, "log10") ? 2 : 3;
    double *acc = calloc((size_t)frames, sizeof *acc);
    if (!acc) {
        fd_tensor_release(&fb);
        fd_tensor_release(&spec);
        fd_tensor_release(out);
        return fd_fail("mel: out of memory");
    }
    for (int64_t m = 0; m < nm; m++) {
        memset(acc, 0, sizeof *acc * (size_t)frames);
        for (int64_t k = 0; k < nfreq; k++) {
            double wk = w[k * nm + m];
            if (wk == 0) continue; /* each filter covers a few bins */
            const float *row = s + k * frames;
            for (int64_t f = 0; f < frames; f++) acc[f] += wk * row[f];
        }
        for (int64_t f = 0; f < frames; f++) {
            double v = acc[f];
            if (mode) v = fmax(v, o->floor);
            dst[m * frames + f] = (float)(mode == 1 ? log(v) : mode == 2 ? log10(v) : mode == 3 ? 10 * log10(v) : v);
        }
    }
    free(acc);
    fd_tensor_release(&fb);
    fd_tensor_release(&spec);
    return FD_OK;
}
