using System.Runtime.InteropServices;
using Diffuse.Imaging.Gif;
using SkiaSharp;

namespace Diffuse.Imaging;

/// <summary>
/// Writes animated GIF89a files, e.g. the reverse process turning noise into data one frame per step. (SkiaSharp
/// decodes GIF but cannot encode it.)
/// </summary>
/// <remarks>
/// All frames share one global palette of 256 colours: the exact colours when the frames hold no more, otherwise a
/// median-cut palette (no dithering, so flat plot colours stay flat). Transparent pixels are composited over white.
/// Pixel data is LZW-compressed as the GIF89a specification prescribes.
/// </remarks>
public static class GifWriter
{
    /// <summary>Writes the frames as an animated GIF, atomically (see <see cref="Figures"/>).</summary>
    /// <param name="path">The GIF file to write (its folder is created when missing).</param>
    /// <param name="frames">The frames, all the same size; not modified or disposed.</param>
    /// <param name="delayCentiseconds">Time each frame is shown, in hundredths of a second (0 to 65535).</param>
    /// <param name="loop">Repeat forever (NETSCAPE2.0 extension); otherwise play once.</param>
    /// <exception cref="ArgumentException">No frames, frames of different sizes, or a delay out of range.</exception>
    public static void Save(string path, IReadOnlyList<SKBitmap> frames, int delayCentiseconds, bool loop = true)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        byte[] gif = Encode(frames, delayCentiseconds, loop);
        AtomicWrite.Bytes(path, gif);
    }

    /// <summary>Encodes the frames as an animated GIF in memory.</summary>
    /// <inheritdoc cref="Save" path="/param[@name!='path']"/>
    public static byte[] Encode(IReadOnlyList<SKBitmap> frames, int delayCentiseconds, bool loop = true)
    {
        ArgumentNullException.ThrowIfNull(frames);
        if (frames.Count == 0) throw new ArgumentException("an animation needs at least one frame.", nameof(frames));
        ArgumentOutOfRangeException.ThrowIfNegative(delayCentiseconds);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(delayCentiseconds, ushort.MaxValue);
        for (int i = 0; i < frames.Count; i++)
        {
            if (frames[i] is null) throw new ArgumentException($"frame {i} is null.", nameof(frames));
        }
        int width = frames[0].Width, height = frames[0].Height;
        if (width < 1 || height < 1 || width > ushort.MaxValue || height > ushort.MaxValue)
        {
            throw new ArgumentException($"GIF frames must be 1 to 65535 pixels a side, not {width}×{height}.", nameof(frames));
        }
        for (int i = 1; i < frames.Count; i++)
        {
            if (frames[i].Width != width || frames[i].Height != height)
            {
                throw new ArgumentException(
                    $"frame {i} is {frames[i].Width}×{frames[i].Height} but frame 0 is {width}×{height}; all frames must be the same size.",
                    nameof(frames));
            }
        }

        // Frames are converted twice (palette, then pixels) rather than all held in memory at once.
        Palette palette = Palette.Build(frames.Select(ToRgbaOverWhite));

        using var output = new MemoryStream();
        output.Write("GIF89a"u8);
        // Logical screen descriptor: global colour table of 2^(7+1) entries, 8 bits per primary.
        WriteUInt16(output, width);
        WriteUInt16(output, height);
        output.WriteByte(0b1111_0111);
        output.WriteByte(0); // background colour index
        output.WriteByte(0); // pixel aspect ratio: not given
        output.Write(palette.Colors);
        if (loop)
        {
            output.Write([0x21, 0xFF, 0x0B]);
            output.Write("NETSCAPE2.0"u8);
            output.Write([0x03, 0x01, 0x00, 0x00, 0x00]); // sub-block: loop count 0 = forever
        }
        foreach (SKBitmap frame in frames)
        {
            // Graphic control extension: disposal 1 (leave in place), no transparency, the delay.
            output.Write([0x21, 0xF9, 0x04, 0b0000_0100]);
            WriteUInt16(output, delayCentiseconds);
            output.Write([0x00, 0x00]);
            // Image descriptor: the whole screen, no local colour table, not interlaced.
            output.WriteByte(0x2C);
            WriteUInt16(output, 0);
            WriteUInt16(output, 0);
            WriteUInt16(output, width);
            WriteUInt16(output, height);
            output.WriteByte(0);
            LzwEncoder.Write(output, palette.Map(ToRgbaOverWhite(frame)));
        }
        output.WriteByte(0x3B);
        return output.ToArray();
    }

    private static void WriteUInt16(Stream stream, int value)
    {
        stream.WriteByte((byte)value);
        stream.WriteByte((byte)(value >> 8));
    }

    /// <summary>The frame's pixels as RGBA bytes, drawn over white so that any transparency becomes opaque.</summary>
    private static byte[] ToRgbaOverWhite(SKBitmap frame)
    {
        var info = new SKImageInfo(frame.Width, frame.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var flat = new SKBitmap(info);
        using (var canvas = new SKCanvas(flat))
        {
            canvas.Clear(SKColors.White);
            canvas.DrawBitmap(frame, 0, 0);
        }
        var bytes = new byte[frame.Width * frame.Height * 4];
        IntPtr source = flat.GetPixels();
        int rowLength = frame.Width * 4;
        for (int y = 0; y < frame.Height; y++)
        {
            Marshal.Copy(source + y * flat.RowBytes, bytes, y * rowLength, rowLength);
        }
        return bytes;
    }
}
