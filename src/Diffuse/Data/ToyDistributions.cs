using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Data;

/// <summary>
/// The built-in two-dimensional distributions, shaped and scaled as the toy data sets of the flow and diffusion
/// literature (Grathwohl et al., "FFJORD", ICLR 2019). Each lies within about [−4, 4]² with a per-coordinate standard
/// deviation between 1 and 2.5.
/// </summary>
public enum ToyDistribution
{
    /// <summary>
    /// A swiss roll seen from its side: angle τ = 1.5π(1 + 2u) with u uniform on [0, 1), point
    /// (τ cos τ, τ sin τ) + N(0, 1²) per coordinate, all divided by 5. Arms about 1.26 apart, noise std 0.2.
    /// Name <c>swissroll</c>.
    /// </summary>
    SwissRoll,

    /// <summary>
    /// Two interleaved half circles of radius 1: with probability ½ the upper (cos πs, sin πs), otherwise the lower
    /// (1 − cos πs, ½ − sin πs), s uniform on [0, 1), plus N(0, 0.1²) per coordinate; then scaled by 2 and shifted by
    /// (−1, −0.2). Name <c>moons</c>.
    /// </summary>
    Moons,

    /// <summary>
    /// An equal mixture of 8 Gaussians with means on the circle of radius 2√2 ≈ 2.83 at angles kπ/4 (k = 0…7) and
    /// isotropic std 0.5/√2 ≈ 0.354. Name <c>8gaussians</c>.
    /// </summary>
    EightGaussians,

    /// <summary>
    /// Uniform on the 8 filled squares of a 4×4 checkerboard covering [−4, 4]² with squares of side 2: the square in
    /// board column i and row j (both 0…3, counted from −4) is filled when i + j is even, so the square at the lower
    /// left corner is filled. No noise: the edges are sharp. Name <c>checkerboard</c>.
    /// </summary>
    Checkerboard,

    /// <summary>
    /// Four concentric circles of radii 0.75, 1.5, 2.25 and 3, each chosen with probability ¼, at a uniform angle,
    /// plus N(0, 0.08²) per coordinate: thin rings with clear gaps. Name <c>rings</c>.
    /// </summary>
    Rings,

    /// <summary>
    /// Five spiral arms: for arm k (chosen uniformly) a point (r, t) with r ~ N(1, 0.3²) radially and t ~ N(0, 0.1²)
    /// tangentially is rotated by 2πk/5 + 0.25·exp(r) and scaled by 2. Name <c>pinwheel</c>.
    /// </summary>
    Pinwheel,
}

/// <summary>
/// Draws seeded, deterministic samples from the <see cref="ToyDistribution"/> sets: the same kind, count and seed
/// give bit-identical points in every run (the library's own generator is used, never torch's global one), and the
/// first n points of a larger sample are the n points of a smaller one.
/// </summary>
public static class ToyData
{
    private static readonly string[] CanonicalNames =
        ["swissroll", "moons", "8gaussians", "checkerboard", "rings", "pinwheel"];

    // Keys are lower case with '-', '_' and spaces removed.
    private static readonly Dictionary<string, ToyDistribution> Aliases = new(StringComparer.Ordinal)
    {
        ["swissroll"] = ToyDistribution.SwissRoll,
        ["roll"] = ToyDistribution.SwissRoll,
        ["moons"] = ToyDistribution.Moons,
        ["twomoons"] = ToyDistribution.Moons,
        ["2moons"] = ToyDistribution.Moons,
        ["8gaussians"] = ToyDistribution.EightGaussians,
        ["eightgaussians"] = ToyDistribution.EightGaussians,
        ["gaussians"] = ToyDistribution.EightGaussians,
        ["checkerboard"] = ToyDistribution.Checkerboard,
        ["checkers"] = ToyDistribution.Checkerboard,
        ["rings"] = ToyDistribution.Rings,
        ["circles"] = ToyDistribution.Rings,
        ["concentricrings"] = ToyDistribution.Rings,
        ["pinwheel"] = ToyDistribution.Pinwheel,
    };

    /// <summary>
    /// The canonical names, in the order of <see cref="ToyDistribution"/>: <c>swissroll</c>, <c>moons</c>,
    /// <c>8gaussians</c>, <c>checkerboard</c>, <c>rings</c>, <c>pinwheel</c>.
    /// </summary>
    public static IReadOnlyList<string> Names { get; } = Array.AsReadOnly(CanonicalNames);

    /// <summary>
    /// Reads a distribution name, ignoring case, hyphens, underscores and spaces. Besides the canonical
    /// <see cref="Names"/> it accepts the enum names and the aliases <c>two-moons</c>, <c>eight-gaussians</c>,
    /// <c>circles</c> and <c>concentric-rings</c>.
    /// </summary>
    /// <returns>Whether <paramref name="name"/> names a distribution.</returns>
    public static bool TryParse(string? name, out ToyDistribution kind)
    {
        kind = default;
        if (name is null) return false;
        Span<char> buffer = stackalloc char[Math.Min(name.Length, 64)];
        int length = 0;
        foreach (char c in name.AsSpan().Trim())
        {
            if (c is '-' or '_' or ' ') continue;
            if (length == buffer.Length) return false;
            buffer[length++] = char.ToLowerInvariant(c);
        }
        return Aliases.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(buffer[..length], out kind);
    }

    /// <summary>Reads a distribution name as <see cref="TryParse"/> does.</summary>
    /// <exception cref="DiffuseException">The name is unknown; the message lists the known names.</exception>
    public static ToyDistribution Parse(string name)
    {
        if (TryParse(name, out var kind)) return kind;
        throw new DiffuseException(
            $"Unknown toy distribution '{name}': choose one of {string.Join(", ", CanonicalNames)}.");
    }

    /// <summary>The canonical name of <paramref name="kind"/>, as listed in <see cref="Names"/>.</summary>
    public static string NameOf(ToyDistribution kind) => CanonicalNames[Index(kind)];

    /// <summary>Draws <paramref name="count"/> points of <paramref name="kind"/> from the generator seeded with <paramref name="seed"/>.</summary>
    /// <returns>A new <c>[count, 2]</c> array; row i is point i.</returns>
    /// <exception cref="DiffuseException"><paramref name="count"/> is negative.</exception>
    public static float[,] SampleArray(ToyDistribution kind, int count, long seed)
    {
        Index(kind);
        if (count < 0)
            throw new DiffuseException($"Cannot draw {count} points from '{NameOf(kind)}': the count must be zero or more.");
        var points = new float[count, 2];
        var rng = new SplitMix64(seed);
        for (int i = 0; i < count; i++)
        {
            var (x, y) = kind switch
            {
                ToyDistribution.SwissRoll => SwissRoll(rng),
                ToyDistribution.Moons => Moons(rng),
                ToyDistribution.EightGaussians => EightGaussians(rng),
                ToyDistribution.Checkerboard => Checkerboard(rng),
                ToyDistribution.Rings => Rings(rng),
                _ => Pinwheel(rng),
            };
            points[i, 0] = (float)x;
            points[i, 1] = (float)y;
        }
        return points;
    }

    /// <summary>Draws points as <see cref="SampleArray"/> does, as a new float32 CPU tensor the caller owns.</summary>
    /// <returns>A float32 tensor of shape <c>[count, 2]</c>.</returns>
    /// <exception cref="DiffuseException"><paramref name="count"/> is negative.</exception>
    public static Tensor Sample(ToyDistribution kind, int count, long seed)
    {
        float[,] points = SampleArray(kind, count, seed);
        var flat = new float[points.Length];
        Buffer.BlockCopy(points, 0, flat, 0, flat.Length * sizeof(float));
        return torch.tensor(flat, [count, 2], ScalarType.Float32);
    }

    private static int Index(ToyDistribution kind) =>
        (uint)kind < (uint)CanonicalNames.Length
            ? (int)kind
            : throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a toy distribution.");

    private static (double X, double Y) SwissRoll(SplitMix64 rng)
    {
        double tau = 1.5 * Math.PI * (1.0 + 2.0 * rng.NextDouble());
        double x = tau * Math.Cos(tau) + rng.NextGaussian();
        double y = tau * Math.Sin(tau) + rng.NextGaussian();
        return (x / 5.0, y / 5.0);
    }

    private static (double X, double Y) Moons(SplitMix64 rng)
    {
        bool upper = rng.NextDouble() < 0.5;
        double s = Math.PI * rng.NextDouble();
        double x = upper ? Math.Cos(s) : 1.0 - Math.Cos(s);
        double y = upper ? Math.Sin(s) : 0.5 - Math.Sin(s);
        x += 0.1 * rng.NextGaussian();
        y += 0.1 * rng.NextGaussian();
        return (2.0 * x - 1.0, 2.0 * y - 0.2);
    }

    private static (double X, double Y) EightGaussians(SplitMix64 rng)
    {
        const double radius = 2.0 * 1.4142135623730951;
        const double std = 0.5 / 1.4142135623730951;
        double angle = rng.NextInt(8) * (Math.PI / 4.0);
        return (radius * Math.Cos(angle) + std * rng.NextGaussian(), radius * Math.Sin(angle) + std * rng.NextGaussian());
    }

    private static (double X, double Y) Checkerboard(SplitMix64 rng)
    {
        // Column i, then one of the two filled rows j with i + j even, then a uniform point in that square.
        int column = rng.NextInt(4);
        int row = 2 * rng.NextInt(2) + (column & 1);
        return (-4.0 + 2.0 * (column + rng.NextDouble()), -4.0 + 2.0 * (row + rng.NextDouble()));
    }

    private static (double X, double Y) Rings(SplitMix64 rng)
    {
        double radius = 0.75 * (rng.NextInt(4) + 1);
        double angle = 2.0 * Math.PI * rng.NextDouble();
        return (radius * Math.Cos(angle) + 0.08 * rng.NextGaussian(), radius * Math.Sin(angle) + 0.08 * rng.NextGaussian());
    }

    private static (double X, double Y) Pinwheel(SplitMix64 rng)
    {
        int arm = rng.NextInt(5);
        double radial = 1.0 + 0.3 * rng.NextGaussian();
        double tangential = 0.1 * rng.NextGaussian();
        double angle = 2.0 * Math.PI * arm / 5.0 + 0.25 * Math.Exp(radial);
        double cos = Math.Cos(angle), sin = Math.Sin(angle);
        return (2.0 * (radial * cos - tangential * sin), 2.0 * (radial * sin + tangential * cos));
    }
}
