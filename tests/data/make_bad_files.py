#!/usr/bin/env python3
"""Writes the crafted bad files of tests/data/bad/ (small; committed).

Each file breaks one rule a loader must enforce. tests/lua/test_io_hostile.lua
lists what each must produce. Re-run after changing this script:
    python3 tests/data/make_bad_files.py   (the MP4 cases need the ffmpeg CLI)
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'bad')


def put(name, data):
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)


# ---- safetensors -----------------------------------------------------------

def st(header, data=b'', raw_header=None, length=None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    n = len(h) if length is None else length
    return struct.pack('<Q', n) + h + data


def st_files():
    f32 = {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]}
    put('st_empty.safetensors', b'')
    put('st_short.safetensors', b'\x10\x00\x00')
    put('st_header_len_huge.safetensors', st({}, length=1 << 40))
    put('st_header_past_eof.safetensors', st({'a': f32}, b'\0' * 8, length=4000))
    put('st_not_json.safetensors', st(None, b'', raw_header=b'{"a": {"dtype": "F32", oops'))
    put('st_not_object.safetensors', st(None, b'', raw_header=b'[1, 2, 3]'))
    put('st_unknown_dtype.safetensors', st({'a': dict(f32, dtype='F128')}, b'\0' * 8))
    put('st_unsupported_dtype.safetensors', st({'a': dict(f32, dtype='I8')}, b'\0' * 8))
    put('st_shape_mismatch.safetensors', st({'a': dict(f32, shape=[2, 2])}, b'\0' * 8))
    put('st_offsets_past_end.safetensors', st({'a': dict(f32, data_offsets=[0, 8])}, b'\0' * 4))
    put('st_offsets_reversed.safetensors', st({'a': dict(f32, shape=[0], data_offsets=[8, 0])}, b'\0' * 8))
    put('st_overlap.safetensors', st({'a': dict(f32, data_offsets=[0, 8]),
                                       'b': dict(f32, data_offsets=[4, 12])}, b'\0' * 12))
    put('st_hole.safetensors', st({'a': dict(f32, data_offsets=[4, 12])}, b'\0' * 12))
    put('st_shape_overflow.safetensors', st({'a': dict(f32, shape=[1 << 31, 1 << 31, 1 << 31, 1 << 31])}, b'\0' * 8))
    put('st_bytes_overflow.safetensors', st({'a': dict(f32, shape=[1 << 62])}, b'\0' * 8))
    put('st_negative_dim.safetensors', st({'a': dict(f32, shape=[-2])}, b'\0' * 8))
    put('st_fractional_dim.safetensors', st({'a': dict(f32, shape=[2.5])}, b'\0' * 8))
    put('st_too_many_dims.safetensors', st({'a': dict(f32, shape=[1] * 9 + [2])}, b'\0' * 8))
    put('st_no_offsets.safetensors', st({'a': {'dtype': 'F32', 'shape': [2]}}, b'\0' * 8))
    put('st_metadata_not_strings.safetensors', st({'__metadata__': {'k': 3}, 'a': f32}, b'\0' * 8))
    put('st_duplicate_name.safetensors', st(None, b'\0' * 16, raw_header=(
        b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},'
        b' "a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}')))
    put('st_truncated_data.safetensors', st({'a': {'dtype': 'F32', 'shape': [1000], 'data_offsets': [0, 4000]}},
                                            b'\0' * 100))
    put('st_deep_nesting.safetensors', st(None, b'', raw_header=b'{"a": ' + b'[' * 5000 + b']' * 5000 + b'}'))
    # what the reference reader refuses and a plain JSON parser lets through
    good = json.dumps({'a': f32}).encode()
    put('st_trailing_garbage.safetensors', st(None, b'\0' * 8, raw_header=good + b' xyz'))
    put('st_nul_padding.safetensors', st(None, b'\0' * 8, raw_header=good + b'\0' * 5))
    put('st_bad_utf8_key.safetensors', st(None, b'\0' * 8, raw_header=good.replace(b'"a"', b'"\xff\xfe"')))
    put('st_float_dim.safetensors', st(None, b'\0' * 24, raw_header=(
        b'{"a": {"dtype": "F32", "shape": [2.0, 3], "data_offsets": [0, 24]}}')))


# ---- PNG ---------------------------------------------------------------------

def chunk(kind, body, crc=None):
    c = zlib.crc32(kind + body) & 0xffffffff if crc is None else crc
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', c)


def png(w, h, depth=8, ctype=2, rows=None, ihdr_crc=None, idat=None):
    sig = b'\x89PNG\r\n\x1a\n'
    ihdr = chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, depth, ctype, 0, 0, 0), ihdr_crc)
    if idat is None:
        raw = rows if rows is not None else b''.join(b'\0' + b'\x80' * (w * 3) for _ in range(h))
        idat = zlib.compress(raw)
    return sig + ihdr + chunk(b'IDAT', idat) + chunk(b'IEND', b'')


def deflate_rows(h, rowbytes):
    """The zlib stream of h filtered rows of zeros (filter byte 0), without holding them."""
    c = zlib.compressobj(9)
    row = b'\0' * (rowbytes + 1)
    return b''.join([c.compress(row) for _ in range(h)] + [c.flush()])


def png_files():
    good = png(16, 16)
    put('png_empty.png', b'')
    put('png_truncated.png', good[:len(good) // 2])
    put('png_signature_only.png', good[:8])
    put('png_bad_ihdr_crc.png', png(16, 16, ihdr_crc=0x12345678))
    put('png_bad_zlib.png', png(16, 16, idat=b'\x78\x9c' + b'\xff' * 40))
    put('png_short_idat.png', png(16, 16, rows=b'\0' + b'\x80' * 48))  # 1 row of 16
    put('png_zero_width.png', png(0, 16))
    put('png_bad_depth.png', png(16, 16, depth=7))
    # Declared sizes the data cannot hold: refused before allocating.
    put('png_huge_dims.png', png(30000, 30000, rows=b'\0' * 100))
    put('png_over_limit.png', png(1000000, 1000000, rows=b'\0' * 100))
    # Honest decompression bombs: all-black 1-bit pictures whose deflate
    # stream really holds every row (8 and 18 KB on disk; 67 and 144
    # megapixels, 0.8 and 1.7 GB as f32 RGB). 8192 x 8192 is the default pixel
    # limit: it loads, and as a portrait costs a few MB; 12000 x 12000 is
    # refused by the limit, naming its size (it was refused before as
    # "more than its bytes can hold", which was wrong: it holds them).
    for side in (8192, 12000):
        put('png_bomb_1bit_%d.png' % side, png(side, side, depth=1, ctype=0, idat=deflate_rows(side, side // 8)))
    # Ancillary chunks fada never reads, among them a zTXt that inflates
    # ~1000:1 to 16 MB and an iCCP: skipped unread, the pixels still load.
    good_parts = good.split(b'IDAT')
    bomb = chunk(b'zTXt', b'Comment\0\0' + zlib.compress(b'\0' * (16 << 20), 9))
    extras = bomb + chunk(b'iCCP', b'icc\0\0' + zlib.compress(b'\1' * 4096)) + chunk(b'tEXt', b'Title\0x')
    put('png_ztxt_bomb.png', good_parts[0][:-4] + extras + good_parts[0][-4:] + b'IDAT' + good_parts[1])
    # Not an image at all, with an image's extension (goes to FFmpeg).
    put('png_text_named.jpg', b'hello, this is not a picture\n' * 4)
    # A BMP header claiming 100000 x 100000 pixels (FFmpeg path).
    bmp = b'BM' + struct.pack('<IHHI', 54 + 16, 0, 0, 54) + struct.pack('<IiiHHIIiiII', 40, 100000, 100000, 1, 24,
                                                                      0, 16, 2835, 2835, 0, 0) + b'\0' * 16
    put('bmp_huge_dims.bmp', bmp)


# ---- WAV ---------------------------------------------------------------------

def wav(channels=1, rate=16000, bits=16, fmt_tag=1, data=b'\0\0' * 100, data_len=None, riff_len=None):
    block = channels * bits // 8
    fmt = struct.pack('<HHIIHH', fmt_tag, channels, rate, rate * block, block, bits)
    dl = len(data) if data_len is None else data_len
    body = b'WAVE' + b'fmt ' + struct.pack('<I', len(fmt)) + fmt + b'data' + struct.pack('<I', dl) + data
    return b'RIFF' + struct.pack('<I', len(body) if riff_len is None else riff_len) + body


def wav_files():
    put('wav_empty.wav', b'')
    put('wav_truncated_header.wav', wav()[:20])
    put('wav_garbage.wav', b'RIFF\x10\x00\x00\x00WAVEjunkjunkjunkjunk' + bytes(range(256)))
    put('wav_many_channels.wav', wav(channels=4000, data=b'\0' * 8000))
    put('wav_zero_rate.wav', wav(rate=0))
    put('wav_bad_format_tag.wav', wav(fmt_tag=0x7777))
    put('wav_zero_bits.wav', wav(bits=0))
    # A data chunk that claims 4 GB but holds 200 bytes: loads what is there.
    put('wav_data_len_huge.wav', wav(data_len=0xfffffff0, riff_len=0xfffffff8))
    # A header and an empty data chunk: no sound at all.
    put('wav_no_data.wav', wav(data=b''))
    # A float WAV carrying NaN and infinities between ordinary samples.
    put('wav_nonfinite.wav', wav(fmt_tag=3, bits=32, data=struct.pack('<6f', 0.1, 0.2, float('nan'), float('inf'),
                                                                         float('-inf'), 0.3)))


def mp3_files():
    # The first 300 bytes of an MP3 made by the ffmpeg CLI: libsndfile takes it
    # for MPEG audio, its mpg123 reader fails, and libsndfile says "File does
    # not exist or is not a regular file" about a file that exists.
    tmp = tempfile.mkdtemp()
    good = os.path.join(tmp, 'good.mp3')
    subprocess.run(['ffmpeg', '-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=r=16000:d=0.5', '-c:a', 'libmp3lame',
                    '-b:a', '32k', good], check=True)
    put('mp3_truncated.mp3', open(good, 'rb').read()[:300])
    os.remove(good)
    os.rmdir(tmp)


def streaminfo(rate=16000, channels=1, bits=16, total=0, last=True):
    packed = (rate << 44) | ((channels - 1) << 41) | ((bits - 1) << 36) | total
    body = struct.pack('>HH', 4096, 4096) + b'\0' * 6 + struct.pack('>Q', packed) + b'\0' * 16
    return bytes([0x80 if last else 0]) + len(body).to_bytes(3, 'big') + body


def flac_files():
    # STREAMINFO and nothing after it: a FLAC with no audio frames.
    only = b'fLaC' + streaminfo()
    put('flac_streaminfo_only.flac', only)
    # Cut inside its metadata.
    put('flac_cut_metadata.flac', only[:20])
    # A real FLAC (FFmpeg's encoder) whose STREAMINFO says 0 Hz: its frames still decode.
    tmp = tempfile.mkdtemp()
    good = os.path.join(tmp, 'good.flac')
    subprocess.run(['ffmpeg', '-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=r=16000:d=0.5', '-c:a', 'flac', good],
                   check=True)
    data = bytearray(open(good, 'rb').read())
    assert data[:4] == b'fLaC' and data[4] & 0x7f == 0, 'STREAMINFO first'
    data[18], data[19], data[20] = 0, 0, data[20] & 0x0f   # the 20-bit sample rate at STREAMINFO byte 10
    put('flac_rate_zero.flac', bytes(data))
    os.remove(good)
    os.rmdir(tmp)


# ---- MP4 and video -------------------------------------------------------------

def mp4_files():
    tmp = tempfile.mkdtemp()
    good = os.path.join(tmp, 'good.mp4')
    subprocess.run(['ffmpeg', '-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=s=32x32:r=10:d=1',
                    '-f', 'lavfi', '-i', 'sine=r=8000:d=1', '-c:v', 'libx264', '-preset', 'ultrafast',
                    '-c:a', 'aac', '-b:a', '16k', '-movflags', '+faststart', good], check=True)
    data = open(good, 'rb').read()
    put('mp4_empty.mp4', b'')
    put('mp4_header_only.mp4', data[:64])
    put('mp4_truncated.mp4', data[:len(data) // 2])
    mdat = data.find(b'mdat')
    garbled = bytearray(data)
    for i in range(mdat + 64, len(garbled), 7):
        garbled[i] ^= 0x5a
    put('mp4_corrupt_mdat.mp4', bytes(garbled))
    put('mp4_random.mp4', bytes((i * 131 + 7) % 251 for i in range(3000)))
    # A raw-video container whose header declares 60000 x 60000 frames.
    put('y4m_huge_dims.y4m', b'YUV4MPEG2 W60000 H60000 F25:1 Ip A1:1 C420jpeg\nFRAME\n' + b'\0' * 64)
    os.remove(good)
    os.rmdir(tmp)


if __name__ == '__main__':
    os.makedirs(OUT, exist_ok=True)
    flac_files()
    mp3_files()
    st_files()
    png_files()
    wav_files()
    mp4_files()
    print('wrote', len(os.listdir(OUT)), 'files to', OUT, file=sys.stderr)
