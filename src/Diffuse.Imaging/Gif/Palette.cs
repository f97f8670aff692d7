namespace Diffuse.Imaging.Gif;

/// <summary>
/// One 256-colour palette for every frame of an animation. Frames with at most 256 distinct colours keep them exactly;
/// otherwise the colours are reduced by median cut (Heckbert, "Color image quantization for frame buffer display",
/// 1982) on a 5-bit-per-channel histogram, splitting the box with the largest squared error each time, into at most
/// 255 colours, so that one entry stays free for a transparent index (<see cref="Used"/>).
/// </summary>
internal sealed class Palette
{
    public const int Size = 256;

    private readonly Dictionary<int, byte>? exact;
    private readonly byte[]? binToIndex;

    private Palette(byte[] colors, int used, Dictionary<int, byte>? exact, byte[]? binToIndex)
    {
        Colors = colors;
        Used = used;
        this.exact = exact;
        this.binToIndex = binToIndex;
    }

    /// <summary>The palette as 256 RGB triples (unused entries are black).</summary>
    public byte[] Colors { get; }

    /// <summary>How many entries the frames' pixels map to (0 … Used − 1); the others are free.</summary>
    public int Used { get; }

    /// <summary>Builds the palette of frames given as RGBA bytes (alpha ignored), reading each frame once.</summary>
    public static Palette Build(IEnumerable<byte[]> frames)
    {
        const int bins = 1 << 15;
        var count = new long[bins];
        var sums = new long[bins * 3];
        var distinct = new Dictionary<int, byte>();
        foreach (byte[] frame in frames)
        {
            for (int i = 0; i < frame.Length; i += 4)
            {
                byte r = frame[i], g = frame[i + 1], b = frame[i + 2];
                if (distinct.Count <= Size) distinct.TryAdd(r << 16 | g << 8 | b, 0);
                int bin = Bin(r, g, b);
                count[bin]++;
                sums[bin * 3] += r;
                sums[bin * 3 + 1] += g;
                sums[bin * 3 + 2] += b;
            }
        }
        if (distinct.Count > Size) return MedianCut(count, sums);
        var colors = new byte[Size * 3];
        int index = 0;
        foreach (int rgb in distinct.Keys.Order().ToList())
        {
            distinct[rgb] = (byte)index;
            colors[index * 3] = (byte)(rgb >> 16);
            colors[index * 3 + 1] = (byte)(rgb >> 8);
            colors[index * 3 + 2] = (byte)rgb;
            index++;
        }
        return new Palette(colors, distinct.Count, distinct, null);
    }

    /// <summary>Palette indices of one RGBA frame.</summary>
    public byte[] Map(byte[] rgba)
    {
        var indices = new byte[rgba.Length / 4];
        for (int p = 0, i = 0; p < indices.Length; p++, i += 4)
        {
            indices[p] = exact is not null
                ? exact[rgba[i] << 16 | rgba[i + 1] << 8 | rgba[i + 2]]
                : binToIndex![Bin(rgba[i], rgba[i + 1], rgba[i + 2])];
        }
        return indices;
    }

    private static int Bin(byte r, byte g, byte b) => (r >> 3) << 10 | (g >> 3) << 5 | b >> 3;

    private static Palette MedianCut(long[] count, long[] sums)
    {
        int bins = count.Length;
        int[] used = Enumerable.Range(0, bins).Where(b => count[b] > 0).ToArray();
        // The mean colour of each used bin, the point median cut works with.
        var mean = new double[bins * 3];
        foreach (int b in used)
        {
            for (int c = 0; c < 3; c++) mean[b * 3 + c] = (double)sums[b * 3 + c] / count[b];
        }

        // Boxes are ranges [Start, End) of `used`, reordered in place as they split.
        var boxes = new List<(int Start, int End)> { (0, used.Length) };
        while (boxes.Count < Size - 1)
        {
            int best = -1;
            double bestError = 0;
            for (int i = 0; i < boxes.Count; i++)
            {
                if (boxes[i].End - boxes[i].Start < 2) continue;
                double error = SquaredError(used, boxes[i], count, mean, out _);
                if (error > bestError)
                {
                    bestError = error;
                    best = i;
                }
            }
            if (best < 0) break;
            (int start, int end) = boxes[best];
            SquaredError(used, boxes[best], count, mean, out int axis);
            Array.Sort(used, start, end - start, Comparer<int>.Create((a, b) =>
            {
                int byAxis = mean[a * 3 + axis].CompareTo(mean[b * 3 + axis]);
                return byAxis != 0 ? byAxis : a.CompareTo(b);
            }));
            long total = 0;
            for (int i = start; i < end; i++) total += count[used[i]];
            long half = 0;
            int split = start + 1;
            for (int i = start; i < end - 1; i++)
            {
                half += count[used[i]];
                split = i + 1;
                if (half * 2 >= total) break;
            }
            boxes[best] = (start, split);
            boxes.Add((split, end));
        }

        var colors = new byte[Size * 3];
        for (int i = 0; i < boxes.Count; i++)
        {
            long n = 0, r = 0, g = 0, bl = 0;
            for (int j = boxes[i].Start; j < boxes[i].End; j++)
            {
                int b = used[j];
                n += count[b];
                r += sums[b * 3];
                g += sums[b * 3 + 1];
                bl += sums[b * 3 + 2];
            }
            colors[i * 3] = (byte)Math.Round((double)r / n);
            colors[i * 3 + 1] = (byte)Math.Round((double)g / n);
            colors[i * 3 + 2] = (byte)Math.Round((double)bl / n);
        }
        var binToIndex = new byte[bins];
        foreach (int b in used)
        {
            int nearest = 0;
            double nearestDistance = double.MaxValue;
            for (int i = 0; i < boxes.Count; i++)
            {
                double dr = mean[b * 3] - colors[i * 3], dg = mean[b * 3 + 1] - colors[i * 3 + 1], db = mean[b * 3 + 2] - colors[i * 3 + 2];
                double d = dr * dr + dg * dg + db * db;
                if (d < nearestDistance)
                {
                    nearestDistance = d;
                    nearest = i;
                }
            }
            binToIndex[b] = (byte)nearest;
        }
        return new Palette(colors, boxes.Count, null, binToIndex);
    }

    /// <summary>Count-weighted squared error of a box around its mean, and the channel with the largest spread.</summary>
    private static double SquaredError(int[] used, (int Start, int End) box, long[] count, double[] mean, out int axis)
    {
        Span<double> sum = stackalloc double[3];
        Span<double> sumSquares = stackalloc double[3];
        double n = 0;
        for (int i = box.Start; i < box.End; i++)
        {
            int b = used[i];
            double w = count[b];
            n += w;
            for (int c = 0; c < 3; c++)
            {
                double v = mean[b * 3 + c];
                sum[c] += w * v;
                sumSquares[c] += w * v * v;
            }
        }
        axis = 0;
        double total = 0, widest = -1;
        for (int c = 0; c < 3; c++)
        {
            double error = sumSquares[c] - sum[c] * sum[c] / n;
            total += error;
            if (error > widest)
            {
                widest = error;
                axis = c;
            }
        }
        return total;
    }
}
