using Diffuse.Distributed;
using Diffuse.Randomness;

namespace Diffuse.Training;

/// <summary>
/// Which data row fills each position of every training batch, and the random streams of a training step. Every value
/// is a function of (seed, step, position) only: the shares of a data-parallel batch together are exactly the batch a
/// single process draws, and a resumed run continues the sequence from its step counter alone. Rows are visited in an
/// endless sequence of per-epoch permutations; batch position j of step s is position s·B + j of that sequence.
/// The domains are those of <see cref="StreamDomains"/> (space <see cref="StreamSpace.Training"/>).
/// </summary>
internal sealed class BatchPlan
{
    /// <summary>The stream domain of label dropout (and of the dropout masks' reseeding).</summary>
    public const int LabelDropoutDomain = StreamDomains.TrainingLabelDropout;
    /// <summary>The stream domain of the DDPM timesteps (or of the importance sampler's uniforms).</summary>
    public const int TimestepDomain = StreamDomains.TrainingTimesteps;
    /// <summary>The stream domain of the training noise ε.</summary>
    public const int NoiseDomain = StreamDomains.TrainingNoise;
    /// <summary>The stream domain of the per-epoch permutations.</summary>
    public const int PermutationDomain = StreamDomains.TrainingPermutation;
    /// <summary>The stream domain of EDM's noise levels.</summary>
    public const int EdmSigmaDomain = StreamDomains.TrainingEdmSigma;

    private readonly ulong _seed;
    private readonly int _rows;
    private int[]? _permutation;
    private long _permutationEpoch = -1;

    /// <summary>A plan over <paramref name="rows"/> data rows for <paramref name="seed"/>.</summary>
    public BatchPlan(ulong seed, int rows)
    {
        if (rows < 1) throw new ArgumentOutOfRangeException(nameof(rows), rows, "a batch plan needs at least one row.");
        _seed = seed;
        _rows = rows;
    }

    /// <summary>
    /// Row indices of <paramref name="shard"/> of the batch at <paramref name="step"/>: positions step·B + j, j in the
    /// shard, of the endless sequence of per-epoch permutations.
    /// </summary>
    public long[] Indices(int step, int batch, BatchShard shard)
    {
        var result = new long[shard.Count];
        for (int i = 0; i < shard.Count; i++)
        {
            long position = (long)step * batch + shard.Start + i;
            long epoch = position / _rows;
            if (epoch != _permutationEpoch)
            {
                _permutation = SeededNoise.Permutation(_seed, Stream(epoch, PermutationDomain), _rows);
                _permutationEpoch = epoch;
            }
            result[i] = _permutation![(int)(position % _rows)];
        }
        return result;
    }

    /// <summary>
    /// The stream of <paramref name="domain"/> at <paramref name="counter"/> (a step or an epoch). Domains 0–3 keep
    /// (counter &lt;&lt; 2) | domain, the streams of runs saved before more domains existed, so that those resume
    /// unchanged; with counters below 2^31 these values stay below 2^33. Domains from 4 set the top bit,
    /// 2^63 | domain·2^32 | counter, which no counter of domains 0–3 reaches.
    /// </summary>
    public static ulong Stream(long counter, int domain)
    {
        if (domain < 4) return ((ulong)counter << 2) | (uint)domain;
        if (counter is < 0 or > uint.MaxValue) throw new InvalidOperationException($"stream counter {counter} of domain {domain} exceeds 32 bits.");
        return (1UL << 63) | ((ulong)(uint)domain << 32) | (ulong)counter;
    }
}
