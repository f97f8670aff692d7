using System.Runtime.InteropServices;
using System.Text;
using static TorchSharp.torch;

namespace Diffuse.Distributed;

/// <summary>A contiguous range [<see cref="Start"/>, <see cref="End"/>) of a global batch's positions.</summary>
/// <param name="Start">First position (inclusive).</param>
/// <param name="End">Last position (exclusive).</param>
public readonly record struct BatchShard(int Start, int End)
{
    /// <summary>Number of positions in the shard.</summary>
    public int Count => End - Start;
}

/// <summary>Choosing a collective for this process, splitting batches over ranks, and collectives on tensors and values.</summary>
public static class Collective
{
    /// <summary>
    /// True when this process was started by an MPI launcher: MPICH's Hydra (and Intel MPI, MVAPICH, Slurm's PMI) set
    /// <c>PMI_RANK</c>, PMIx launchers <c>PMIX_RANK</c>, Open MPI's <c>mpiexec</c> <c>OMPI_COMM_WORLD_SIZE</c>.
    /// </summary>
    public static bool IsMpiLaunch(Func<string, string?> environment) =>
        !string.IsNullOrEmpty(environment("PMI_RANK")) || !string.IsNullOrEmpty(environment("PMIX_RANK")) || IsOpenMpiLaunch(environment);

    /// <summary>True when Open MPI's launcher started this process (it sets <c>OMPI_COMM_WORLD_SIZE</c>).</summary>
    public static bool IsOpenMpiLaunch(Func<string, string?> environment) => !string.IsNullOrEmpty(environment("OMPI_COMM_WORLD_SIZE"));

    /// <summary>
    /// The collective for this process: <see cref="MpiCollective"/> when launched by <c>mpiexec</c> (see
    /// <see cref="IsMpiLaunch"/>), otherwise <see cref="SingleProcessCollective.Instance"/>. MPI is loaded only in the
    /// first case, so a machine without MPI runs single-process training unchanged.
    /// </summary>
    public static ICollective FromEnvironment() =>
        IsMpiLaunch(Environment.GetEnvironmentVariable) ? new MpiCollective() : SingleProcessCollective.Instance;

    /// <summary>
    /// The positions of a global batch of <paramref name="batch"/> examples that rank <paramref name="rank"/> of
    /// <paramref name="size"/> handles: contiguous, in rank order, covering the batch exactly once, with sizes that
    /// differ by at most one (⌊r·B/N⌋ … ⌊(r+1)·B/N⌋).
    /// </summary>
    public static BatchShard Shard(int batch, int rank, int size)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), size, "the number of ranks must be at least 1.");
        if ((uint)rank >= (uint)size) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must lie in 0 … {size - 1}.");
        if (batch < 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "the batch cannot be negative.");
        return new BatchShard((int)((long)rank * batch / size), (int)((long)(rank + 1) * batch / size));
    }

    /// <summary>Sums a contiguous float32 CPU tensor over all ranks, in place on its memory (one MPI_Allreduce).</summary>
    public static void AllReduceSum(this ICollective collective, Tensor values)
    {
        if (collective.Size == 1) return;
        collective.AllReduceSum(MemoryMarshal.Cast<byte, float>(Memory(values, ScalarType.Float32)));
    }

    /// <summary>Overwrites a contiguous CPU tensor on every rank with rank <paramref name="root"/>'s values, in place.</summary>
    public static void Broadcast(this ICollective collective, Tensor values, int root = 0)
    {
        if (collective.Size == 1) return;
        collective.Broadcast(Memory(values, values.dtype), root);
    }

    /// <summary>Rank <paramref name="root"/>'s <paramref name="values"/>, on every rank (the lengths must agree).</summary>
    public static void Broadcast<T>(this ICollective collective, Span<T> values, int root = 0) where T : unmanaged
    {
        if (collective.Size == 1) return;
        collective.Broadcast(MemoryMarshal.AsBytes(values), root);
    }

    /// <summary>Rank <paramref name="root"/>'s string, on every rank; other ranks may pass null.</summary>
    public static string BroadcastString(this ICollective collective, string? text, int root = 0)
    {
        if (collective.Size == 1) return text ?? throw new ArgumentNullException(nameof(text));
        byte[] bytes = collective.Rank == root ? Encoding.UTF8.GetBytes(text ?? throw new ArgumentNullException(nameof(text))) : Array.Empty<byte>();
        Span<long> length = stackalloc long[] { bytes.LongLength };
        collective.Broadcast(length, root);
        if (collective.Rank != root) bytes = new byte[checked((int)length[0])];
        collective.Broadcast(bytes.AsSpan(), root);
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>The memory of a contiguous CPU tensor of <paramref name="dtype"/>, as bytes (no copy; keep the tensor alive while using it).</summary>
    private static Span<byte> Memory(Tensor tensor, ScalarType dtype)
    {
        if (tensor.dtype != dtype) throw new ArgumentException($"expected a {dtype} tensor, got {tensor.dtype}.", nameof(tensor));
        if (tensor.device_type != TorchSharp.DeviceType.CPU) throw new ArgumentException("collectives run on CPU tensors only.", nameof(tensor));
        if (!tensor.is_contiguous()) throw new ArgumentException("collectives need a contiguous tensor.", nameof(tensor));
        return tensor.bytes;
    }
}
