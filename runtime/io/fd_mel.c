/* STFT (libavutil av_tx FFTs) and mel filter banks; see fd_mel.h. */
#include <libavutil/mem.h>
#include <libavutil/tx.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/fd_mel.h"

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

/* ---- a DFT of any size on av_tx ----------------------------------------
 * Powers of two take av_tx's real FFT. Other sizes (n_fft = 400, the speech
 * default, is 16 x 25) would fall to av_tx's O(n^2) fallback in FFmpeg 5.1
 * (0.8 s for 10 s of audio), so they go through Bluestein's chirp-z
 * transform: X_k = c*_k sum_n (x_n c*_n) c_{k-n}, c_n = exp(i pi n^2 / N), a
 * convolution done with two power-of-two FFTs of size M >= 2N - 1. */
typedef struct {
    int64_t n, m;             /* DFT size; Bluestein's FFT size (0: direct RDFT) */
    AVTXContext *fwd, *inv;
    av_tx_fn fwd_fn, inv_fn;
    AVComplexFloat *chirp;    /* [n] c*_k = exp(-i pi k^2 / N) */
    AVComplexFloat *kernel;   /* [m] FFT of the wrapped c_n, divided by M */
    AVComplexFloat *a, *b;    /* [m] work */
    float *real_in;           /* [n + 2] RDFT input (zeroed: the RDFT reads past n) */
} dft_plan;

static void dft_free(dft_plan *p)
{
    av_tx_uninit(&p->fwd);
    av_tx_uninit(&p->inv);
    av_free(p->chirp), av_free(p->kernel), av_free(p->a), av_free(p->b), av_free(p->real_in);
    memset(p, 0, sizeof *p);
}

static int dft_init(dft_plan *p, int64_t n)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    float scale = 1.0f;
    if ((n & (n - 1)) == 0) {
        p->real_in = av_mallocz(sizeof(float) * (size_t)(n + 2));
        p->b = av_mallocz(sizeof *p->b * (size_t)(n / 2 + 2));
        if (!p->real_in || !p->b || av_tx_init(&p->fwd, &p->fwd_fn, AV_TX_FLOAT_RDFT, 0, (int)n, &scale, 0) < 0)
            goto fail;
        return FD_OK;
    }
    int64_t m = 1;
    while (m < 2 * n - 1) m *= 2;
    p->m = m;
    p->chirp = av_malloc(sizeof *p->chirp * (size_t)n);
    p->kernel = av_mallocz(sizeof *p->kernel * (size_t)m);
    p->a = av_malloc(sizeof *p->a * (size_t)m);
    p->b = av_malloc(sizeof *p->b * (size_t)m);
    if (!p->chirp || !p->kernel || !p->a || !p->b ||
        av_tx_init(&p->fwd, &p->fwd_fn, AV_TX_FLOAT_FFT, 0, (int)m, &scale, 0) < 0 ||
        av_tx_init(&p->inv, &p->inv_fn, AV_TX_FLOAT_FFT, 1, (int)m, &scale, 0) < 0)
        goto fail;
    for (int64_t k = 0; k < n; k++) {
        /* k^2 mod 2N keeps the angle exact in double for any k */
        double ang = M_PI * (double)((k * k) % (2 * n)) / (double)n;
        p->chirp[k] = (AVComplexFloat){(float)cos(ang), (float)-sin(ang)};
        p->a[k] = (AVComplexFloat){(float)cos(ang), (float)sin(ang)};
        if (k) p->a[m - k] = p->a[k];
    }
    for (int64_t k = n; k <= m - n; k++) p->a[k] = (AVComplexFloat){0, 0};
    p->fwd_fn(p->fwd, p->kernel, p->a, sizeof(AVComplexFloat));
    for (int64_t k = 0; k < m; k++) p->kernel[k].re /= (float)m, p->kernel[k].im /= (float)m;
    return FD_OK;
fail:
    dft_free(p);
    return fd_fail("mel: av_tx cannot make an FFT for n_fft %lld", (long long)n);
}

/* spec[0 .. n/2] = DFT of x[0 .. n-1] (real input). */
static void dft_run(dft_plan *p, const float *x, AVComplexFloat *spec)
{
    int64_t n = p->n, m = p->m;
    if (!m) {
        memcpy(p->real_in, x, sizeof(float) * (size_t)n);
        p->fwd_fn(p->fwd, spec, p->real_in, sizeof(float));
        return;
    }
    for (int64_t k = 0; k < n; k++) p->a[k] = (AVComplexFloat){x[k] * p->chirp[k].re, x[k] * p->chirp[k].im};
    for (int64_t k = n; k < m; k++) p->a[k] = (AVComplexFloat){0, 0};
    p->fwd_fn(p->fwd, p->b, p->a, sizeof(AVComplexFloat));
    for (int64_t k = 0; k < m; k++) {
        AVComplexFloat u = p->b[k], v = p->kernel[k];
        p->b[k] = (AVComplexFloat){u.re * v.re - u.im * v.im, u.re * v.im + u.im * v.re};
    }
    p->inv_fn(p->inv, p->a, p->b, sizeof(AVComplexFloat));
    for (int64_t k = 0; k <= n / 2; k++) {
        AVComplexFloat u = p->a[k], c = p->chirp[k];
        spec[k] = (AVComplexFloat){u.re * c.re - u.im * c.im, u.re * c.im + u.im * c.re};
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
    dft_plan plan;
    if (dft_init(&plan, nfft)) {
        fd_tensor_release(&xc);
        return FD_ERR;
    }
    float *win = av_malloc(sizeof *win * (size_t)nfft);
    float *in = av_malloc(sizeof *in * (size_t)nfft);
    AVComplexFloat *spec = av_malloc(sizeof *spec * (size_t)(nfreq + 1));
    if (!win || !in || !spec || fd_tensor_empty(out, FD_F32, 2, (int64_t[]){nfreq, frames})) {
        av_free(win), av_free(in), av_free(spec);
        dft_free(&plan);
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
            in[i] = src[j] * win[i];
        }
        dft_run(&plan, in, spec);
        for (int64_t k = 0; k < nfreq; k++) {
            double re = spec[k].re, im = spec[k].im, p = re * re + im * im;
            dst[k * frames + f] = (float)(o->power == 2.0 ? p : sqrt(p));
        }
    }
    av_free(win), av_free(in), av_free(spec);
    dft_free(&plan);
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
