namespace Diffuse.Randomness;

/// <summary>
/// Knuth's subtractive generator (The Art of Computer Programming, vol. 2, §3.6; Numerical Recipes' <c>ran3</c>) with
/// the seeding of the .NET runtime's seeded <c>Random(int)</c>, so that it draws exactly the numbers that class drew.
/// The sample metrics chose their training subsets with it before every draw became counter-based; it is kept for those
/// subsets only, so that the documented KDE scores and noise floors stay bit-identical. New code draws with
/// <see cref="SeededNoise"/> and a domain of <see cref="StreamDomains"/>.
/// </summary>
internal sealed class SubtractiveSequence
{
    private const int Modulus = int.MaxValue;
    private const int SeedOffset = 161803398;
    private readonly int[] _state = new int[56];
    private int _next;
    private int _nextLagged = 21;

    /// <summary>The sequence of <paramref name="seed"/>.</summary>
    public SubtractiveSequence(int seed)
    {
        int value = SeedOffset - (seed == int.MinValue ? int.MaxValue : Math.Abs(seed));
        _state[55] = value;
        int previous = 1, position = 0;
        for (int i = 1; i < 55; i++)
        {
            position += 21;
            if (position >= 55) position -= 55;
            _state[position] = previous;
            previous = value - previous;
            if (previous < 0) previous += Modulus;
            value = _state[position];
        }
        for (int round = 1; round < 5; round++)
        {
            for (int i = 1; i < 56; i++)
            {
                int lagged = i + 30;
                if (lagged >= 55) lagged -= 55;
                _state[i] -= _state[1 + lagged];
                if (_state[i] < 0) _state[i] += Modulus;
            }
        }
    }

    /// <summary>A uniform double in [0, 1).</summary>
    public double NextDouble() => NextInternal() * (1.0 / Modulus);

    /// <summary>A uniform integer in [<paramref name="min"/>, <paramref name="max"/>) for a range below 2³¹.</summary>
    public int Next(int min, int max) => (int)(NextDouble() * ((long)max - min)) + min;

    private int NextInternal()
    {
        if (++_next >= 56) _next = 1;
        if (++_nextLagged >= 56) _nextLagged = 1;
        int value = _state[_next] - _state[_nextLagged];
        if (value == Modulus) value--;
        if (value < 0) value += Modulus;
        _state[_next] = value;
        return value;
    }
}
