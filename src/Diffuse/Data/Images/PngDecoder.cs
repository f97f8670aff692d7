using System.Buffers.Binary;
using System.IO.Compression;

namespace Diffuse.Data.Images;

/// <summary>
/// A small PNG decoder (ISO/IEC 15948) for the data packages the core library reads itself, so that it needs no
/// imaging dependency: non-interlaced images of every colour type, 8-bit samples (1, 2 and 4 bits for palettes and
/// grey, 16 bits reduced to their high byte), decoded to 8-bit RGBA. Every chunk's CRC is checked, so a damaged file
/// is an error rather than wrong pixels.
/// </summary>
internal static class PngDecoder
{
    private static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];
    private static readonly uint[] CrcTable = BuildCrcTable();

    /// <summary>Decodes <paramref name="png"/> to (width, height, RGBA bytes row after row).</summary>
    /// <exception cref="InvalidDataException">The bytes are not a complete, supported PNG image; the message says why.</exception>
    public static (int Width, int Height, byte[] Rgba) Decode(ReadOnlySpan<byte> png)
    {
        if (png.Length < Signature.Length || !png[..Signature.Length].SequenceEqual(Signature))
            throw new InvalidDataException("not a PNG file (wrong signature)");
        int width = 0, height = 0, depth = 0, colour = -1;
        byte[]? palette = null, alpha = null;
        using var idat = new MemoryStream();
        bool ended = false;
        int at = Signature.Length;
        while (!ended)
        {
            if (at + 12 > png.Length) throw new InvalidDataException("truncated (no IEND chunk)");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(png[at..]);
            if (length > int.MaxValue || at + 12 + (long)length > png.Length) throw new InvalidDataException("truncated chunk");
            var typeAndData = png.Slice(at + 4, 4 + (int)length);
            string type = System.Text.Encoding.ASCII.GetString(typeAndData[..4]);
            var data = typeAndData[4..];
            if (Crc(typeAndData) != BinaryPrimitives.ReadUInt32BigEndian(png[(at + 8 + (int)length)..]))
                throw new InvalidDataException($"CRC mismatch in chunk {type}");
            at += 12 + (int)length;
            switch (type)
            {
                case "IHDR":
                    if (data.Length != 13) throw new InvalidDataException("bad IHDR");
                    width = BinaryPrimitives.ReadInt32BigEndian(data);
                    height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                    depth = data[8];
                    colour = data[9];
                    if (width < 1 || height < 1 || (long)width * height > 1 << 24) throw new InvalidDataException($"unsupported size {width}×{height}");
                    if (data[12] != 0) throw new InvalidDataException("interlaced PNGs are not supported");
                    if (!IsValid(colour, depth)) throw new InvalidDataException($"invalid colour type {colour} with bit depth {depth}");
                    break;
                case "PLTE": palette = data.ToArray(); break;
                case "tRNS": alpha = data.ToArray(); break;
                case "IDAT": idat.Write(data); break;
                case "IEND": ended = true; break;
            }
        }
        if (colour < 0) throw new InvalidDataException("no IHDR chunk");
        if (colour == 3 && palette is null) throw new InvalidDataException("palette image without a PLTE chunk");
        int channels = colour switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, _ => 4 };
        int bitsPerPixel = channels * depth;
        int stride = (width * bitsPerPixel + 7) / 8;
        int bpp = Math.Max(1, bitsPerPixel / 8);
        var raw = new byte[(long)(stride + 1) * height];
        idat.Position = 0;
        try
        {
            using var zlib = new ZLibStream(idat, CompressionMode.Decompress);
            zlib.ReadExactly(raw);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
        {
            throw new InvalidDataException($"damaged or short image data ({e.Message})");
        }
        Unfilter(raw, stride, height, bpp);
        return (width, height, ToRgba(raw, width, height, stride, colour, depth, palette, alpha));
    }

    private static bool IsValid(int colour, int depth) => colour switch
    {
        0 => depth is 1 or 2 or 4 or 8 or 16,
        3 => depth is 1 or 2 or 4 or 8,
        2 or 4 or 6 => depth is 8 or 16,
        _ => false,
    };

    /// <summary>Undoes the per-row filters (None, Sub, Up, Average, Paeth) in place.</summary>
    private static void Unfilter(byte[] raw, int stride, int height, int bpp)
    {
        for (int y = 0; y < height; y++)
        {
            int row = y * (stride + 1), prior = row - (stride + 1);
            int filter = raw[row];
            if (filter > 4) throw new InvalidDataException($"unknown filter {filter} in row {y}");
            for (int x = 0; x < stride; x++)
            {
                int i = row + 1 + x;
                int left = x >= bpp ? raw[i - bpp] : 0;
                int up = y > 0 ? raw[prior + 1 + x] : 0;
                int upLeft = y > 0 && x >= bpp ? raw[prior + 1 + x - bpp] : 0;
                int predictor = filter switch
                {
                    0 => 0,
                    1 => left,
                    2 => up,
                    3 => (left + up) >> 1,
                    _ => Paeth(left, up, upLeft),
                };
                raw[i] = (byte)(raw[i] + predictor);
            }
        }
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static byte[] ToRgba(byte[] raw, int width, int height, int stride, int colour, int depth, byte[]? palette, byte[]? alpha)
    {
        var rgba = new byte[(long)width * height * 4];
        int channels = colour switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, _ => 4 };
        for (int y = 0; y < height; y++)
        {
            int row = y * (stride + 1) + 1;
            for (int x = 0; x < width; x++)
            {
                int o = (y * width + x) * 4;
                if (depth < 8)
                {
                    int bit = x * depth;
                    int value = (raw[row + bit / 8] >> (8 - depth - bit % 8)) & ((1 << depth) - 1);
                    if (colour == 3) SetFromPalette(rgba, o, value, palette!, alpha);
                    else
                    {
                        byte grey = (byte)(value * 255 / ((1 << depth) - 1));
                        rgba[o] = rgba[o + 1] = rgba[o + 2] = grey;
                        rgba[o + 3] = alpha is { Length: >= 2 } && BinaryPrimitives.ReadUInt16BigEndian(alpha) == value ? (byte)0 : (byte)255;
                    }
                    continue;
                }
                int step = depth / 8;
                int p = row + x * channels * step;
                byte Sample(int c) => raw[p + c * step];
                switch (colour)
                {
                    case 3: SetFromPalette(rgba, o, raw[p], palette!, alpha); break;
                    case 0:
                        rgba[o] = rgba[o + 1] = rgba[o + 2] = Sample(0);
                        rgba[o + 3] = alpha is { Length: >= 2 } && Key(raw, p, step) == BinaryPrimitives.ReadUInt16BigEndian(alpha) ? (byte)0 : (byte)255;
                        break;
                    case 4: rgba[o] = rgba[o + 1] = rgba[o + 2] = Sample(0); rgba[o + 3] = Sample(1); break;
                    case 2:
                        rgba[o] = Sample(0); rgba[o + 1] = Sample(1); rgba[o + 2] = Sample(2);
                        rgba[o + 3] = alpha is { Length: >= 6 } && Key(raw, p, step) == BinaryPrimitives.ReadUInt16BigEndian(alpha)
                            && Key(raw, p + step, step) == BinaryPrimitives.ReadUInt16BigEndian(alpha.AsSpan(2))
                            && Key(raw, p + 2 * step, step) == BinaryPrimitives.ReadUInt16BigEndian(alpha.AsSpan(4)) ? (byte)0 : (byte)255;
                        break;
                    default: rgba[o] = Sample(0); rgba[o + 1] = Sample(1); rgba[o + 2] = Sample(2); rgba[o + 3] = Sample(3); break;
                }
            }
        }
        return rgba;
    }

    /// <summary>A sample as stored (8 or 16 bits), for comparison with a tRNS colour key.</summary>
    private static int Key(byte[] raw, int p, int step) => step == 1 ? raw[p] : (raw[p] << 8) | raw[p + 1];

    private static void SetFromPalette(byte[] rgba, int o, int index, byte[] palette, byte[]? alpha)
    {
        if (3 * index + 2 >= palette.Length) throw new InvalidDataException($"palette index {index} outside the {palette.Length / 3}-colour palette");
        rgba[o] = palette[3 * index];
        rgba[o + 1] = palette[3 * index + 1];
        rgba[o + 2] = palette[3 * index + 2];
        rgba[o + 3] = alpha is not null && index < alpha.Length ? alpha[index] : (byte)255;
    }

    internal static uint Crc(ReadOnlySpan<byte> bytes)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in bytes) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFF;
    }

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}
