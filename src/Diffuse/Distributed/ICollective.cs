namespace Diffuse.Distributed;

/// <summary>
/// The collective operations data-parallel training needs, over a fixed group of processes ("ranks"). Every rank must
/// make the same calls in the same order with buffers of the same length, or the job hangs or fails. Two
/// implementations: <see cref="SingleProcessCollective"/> (one rank; every operation is a no-op) and
/// <see cref="MpiCollective"/> (MPI_COMM_WORLD of an <c>mpiexec</c> launch). <see cref="Collective.FromEnvironment"/>
/// picks one.
/// </summary>
public interface ICollective : IDisposable
{
    /// <summary>This process's rank, 0 … <see cref="Size"/> − 1. Rank 0 writes files and output.</summary>
    int Rank { get; }

    /// <summary>The number of processes.</summary>
    int Size { get; }

    /// <summary>A short description for messages, e.g. "MPICH (2 processes)" or "a single process".</summary>
    string Description { get; }

    /// <summary>Replaces <paramref name="values"/> on every rank by the element-wise sum over all ranks (MPI_Allreduce, MPI_SUM, in place).</summary>
    void AllReduceSum(Span<float> values);

    /// <summary>Replaces <paramref name="values"/> on every rank by the element-wise sum over all ranks, in double precision.</summary>
    void AllReduceSum(Span<double> values);

    /// <summary>Copies <paramref name="data"/> of rank <paramref name="root"/> into <paramref name="data"/> on every other rank (MPI_Bcast).</summary>
    void Broadcast(Span<byte> data, int root = 0);

    /// <summary>Returns once every rank has called it.</summary>
    void Barrier();

    /// <summary>
    /// Ends every process of the job with exit code <paramref name="exitCode"/> (MPI_Abort), so that no rank waits forever
    /// for one that failed. Flush output first; this does not return.
    /// </summary>
    void Abort(int exitCode);
}
