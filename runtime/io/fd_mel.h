/* Spectrogram and log-mel features, matching torchaudio 0.13's
 * Spectrogram / MelSpectrogram (center=True with reflect padding, periodic
 * window zero-padded to n_fft, |X|^power, mel filters from
 * torchaudio.functional.melscale_fbanks with mel_scale "htk" (torchaudio's
 * default) or "slaney" and norm None or "slaney"), followed by
 * log(max(mel, floor)). Real FFTs by libavutil's av_tx. */
#ifndef FD_MEL_H
#define FD_MEL_H

#include "runtime/core/fd_tensor.h"

typedef struct fd_mel_opts {
    int sample_rate;
    int n_fft, hop, win_length;   /* hop 0 = win_length / 2; win_length 0 = n_fft */
    const char *window;           /* "hann" (default), "hamming", "rect" */
    int center;                   /* pad n_fft/2 on both sides by reflection */
    double power;                 /* 1 magnitude, 2 power (default) */
    int n_mels;
    double fmin, fmax;            /* fmax <= 0: sample_rate / 2 */
    const char *mel_scale;        /* "htk" (default) or "slaney" */
    const char *norm;             /* NULL / "none" or "slaney" (area-normalised filters) */
    const char *log;              /* "none", "ln" (default), "log10", "db" (10 log10) */
    double floor;                 /* values clamp to at least this before the log (default 1e-10) */
} fd_mel_opts;

/* Fills unset fields (0 / NULL) with the defaults above. */
void fd_mel_defaults(fd_mel_opts *o);
/* wave: float [N] -> out: f32 [n_fft/2 + 1, frames] of |STFT|^power. */
int fd_spectrogram(fd_tensor *out, const fd_tensor *wave, const fd_mel_opts *o);
/* f32 [n_fft/2 + 1, n_mels] filter bank (torchaudio's orientation). */
int fd_mel_filters(fd_tensor *out, const fd_mel_opts *o);
/* wave: float [N] -> out: f32 [n_mels, frames], logged as o->log says. */
int fd_log_mel(fd_tensor *out, const fd_tensor *wave, const fd_mel_opts *o);

#endif
