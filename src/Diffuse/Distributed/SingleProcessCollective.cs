namespace Diffuse.Distributed;

/// <summary>
/// The collective of a process that runs alone (not launched by <c>mpiexec</c>): rank 0 of 1. Sums over one rank and
/// broadcasts from rank 0 leave the buffers unchanged, so the trainer runs its one code path at no cost.
/// </summary>
public sealed class SingleProcessCollective : ICollective
{
    /// <summary>The shared instance (it holds no state).</summary>
    public static SingleProcessCollective Instance { get; } = new();

    /// <inheritdoc />
    public int Rank => 0;

    /// <inheritdoc />
    public int Size => 1;

    /// <inheritdoc />
    public string Description => "a single process";

    /// <inheritdoc />
    public void AllReduceSum(Span<float> values) { }

    /// <inheritdoc />
    public void AllReduceSum(Span<double> values) { }

    /// <inheritdoc />
    public void Broadcast(Span<byte> data, int root = 0)
    {
        if (root != 0) throw new ArgumentOutOfRangeException(nameof(root), root, "a single process has only rank 0.");
    }

    /// <inheritdoc />
    public void Barrier() { }

    /// <inheritdoc />
    public void Abort(int exitCode) => Environment.Exit(exitCode);

    /// <inheritdoc />
    public void Dispose() { }
}
