namespace Diffuse.Data;

/// <summary>
/// A small seeded generator whose sequence is fixed by its algorithm alone (Steele, Lea &amp; Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014), so that data drawn from a seed never changes between runs, library
/// versions or runtimes, and never touches torch's global generator.
/// </summary>
internal sealed class SplitMix64
{
    private ulong state;
    private double spareGaussian;
    private bool hasSpareGaussian;

    /// <summary>Starts the sequence for <paramref name="seed"/>.</summary>
    public SplitMix64(long seed) => state = unchecked((ulong)seed);

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        unchecked
        {
            state += 0x9E3779B97F4A7C15UL;
            ulong z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>A uniform double in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>A uniform integer in [0, <paramref name="count"/>).</summary>
    public int NextInt(int count) => (int)Math.Min(count - 1, (long)(NextDouble() * count));

    /// <summary>A standard normal draw (Box–Muller; the second value of each pair is kept for the next call).</summary>
    public double NextGaussian()
    {
        if (hasSpareGaussian)
        {
            hasSpareGaussian = false;
            return spareGaussian;
        }
        // 1 − u lies in (0, 1], so the logarithm is finite.
        double radius = Math.Sqrt(-2.0 * Math.Log(1.0 - NextDouble()));
        double angle = 2.0 * Math.PI * NextDouble();
        spareGaussian = radius * Math.Sin(angle);
        hasSpareGaussian = true;
        return radius * Math.Cos(angle);
    }
}
