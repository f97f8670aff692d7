namespace Diffuse.Randomness;

/// <summary>
/// The named families of random streams beyond sampling's (stream 0 the initial noise, stream i + 1 step i, keyed by
/// (seed, sample index)). A domain turns a sampling seed and a counter into a seed of its own, independent of every other
/// domain and counter, so that an operation that samples repeatedly (RePaint's resampling) still draws each value as a
/// pure function of (seed, sample index, where it is in the operation).
/// </summary>
public enum NoiseDomain : ulong
{
    /// <summary>The step noise of RePaint's repeated passes over a block of levels (counter: pass number).</summary>
    RePaintSteps = StreamDomains.RePaintSteps,
    /// <summary>The noise of RePaint's jumps back up to a higher level (counter: jump number).</summary>
    RePaintJumps = StreamDomains.RePaintJumps,
}

/// <summary>Seeds of <see cref="NoiseDomain"/>s.</summary>
public static class NoiseDomains
{
    /// <summary>The seed of <paramref name="domain"/> for <paramref name="seed"/> and <paramref name="counter"/>.</summary>
    public static ulong Seed(ulong seed, NoiseDomain domain, ulong counter) => SeededNoise.Key(seed, (ulong)domain, counter);
}
