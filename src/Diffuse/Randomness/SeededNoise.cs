using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Randomness;

/// <summary>
/// Counter-based random numbers: every value is a pure function of (seed, stream, sample index, element), so that sample
/// i gets the same noise whatever batch it runs in, on any number of processes, and a resumed run continues the same
/// random sequence from its step counter alone. Uses SplitMix64 (Steele et al. 2014) as the mixing function and the
/// Box–Muller transform for normal variates.
/// </summary>
public static class SeededNoise
{
    /// <summary>Mixes several 64-bit words into one well-scrambled key.</summary>
    public static ulong Key(ulong seed, ulong stream, ulong index)
    {
        ulong h = Mix(seed ^ 0x9E3779B97F4A7C15UL);
        h = Mix(h ^ stream);
        return Mix(h ^ (index * 0xD1B54A32D192ED03UL));
    }

    /// <summary>
    /// Standard normal values, shape [indices.Length, ..elementShape], float32, on <paramref name="device"/> (default the
    /// CPU, where they are computed); row r depends only on (seed, stream, indices[r]).
    /// </summary>
    public static Tensor Normal(ulong seed, ulong stream, ReadOnlySpan<long> indices, ReadOnlySpan<long> elementShape, Device? device = null)
    {
        long perRow = 1;
        foreach (var d in elementShape) perRow *= d;
        var values = new float[indices.Length * perRow];
        for (int r = 0; r < indices.Length; r++)
            FillNormal(Key(seed, stream, (ulong)indices[r]), values.AsSpan((int)(r * perRow), (int)perRow));
        var shape = new long[elementShape.Length + 1];
        shape[0] = indices.Length;
        elementShape.CopyTo(shape.AsSpan(1));
        var result = tensor(values, shape);
        if (device is null || device.type == DeviceType.CPU) return result;
        using (result) return result.to(device);
    }

    /// <summary>Normal values for consecutive sample indices first … first + count − 1.</summary>
    public static Tensor Normal(ulong seed, ulong stream, long first, int count, ReadOnlySpan<long> elementShape, Device? device = null)
    {
        var indices = new long[count];
        for (int i = 0; i < count; i++) indices[i] = first + i;
        return Normal(seed, stream, indices, elementShape, device);
    }

    /// <summary>A uniform double in [0, 1) for (seed, stream, index).</summary>
    public static double Uniform(ulong seed, ulong stream, ulong index) => ToUnit(Mix(Key(seed, stream, index)));

    /// <summary>A uniform integer in [0, bound) for (seed, stream, index).</summary>
    public static int UniformInt(ulong seed, ulong stream, ulong index, int bound) =>
        (int)Math.Min(bound - 1, Math.Floor(Uniform(seed, stream, index) * bound));

    /// <summary>A permutation of 0 … count − 1 determined by (seed, stream) (Fisher–Yates).</summary>
    public static int[] Permutation(ulong seed, ulong stream, int count)
    {
        var p = new int[count];
        for (int i = 0; i < count; i++) p[i] = i;
        ulong state = Key(seed, stream, 0);
        for (int i = count - 1; i > 0; i--)
        {
            state += 0x9E3779B97F4A7C15UL;
            int j = (int)(Mix(state) % (ulong)(i + 1));
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }

    private static void FillNormal(ulong key, Span<float> output)
    {
        ulong state = key;
        for (int k = 0; k < output.Length; k += 2)
        {
            state += 0x9E3779B97F4A7C15UL;
            double u1 = 1.0 - ToUnit(Mix(state));   // (0, 1]: log is finite
            state += 0x9E3779B97F4A7C15UL;
            double u2 = ToUnit(Mix(state));
            double radius = Math.Sqrt(-2.0 * Math.Log(u1));
            double angle = 2.0 * Math.PI * u2;
            output[k] = (float)(radius * Math.Cos(angle));
            if (k + 1 < output.Length) output[k + 1] = (float)(radius * Math.Sin(angle));
        }
    }

    private static double ToUnit(ulong bits) => (bits >> 11) * (1.0 / (1UL << 53));

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
