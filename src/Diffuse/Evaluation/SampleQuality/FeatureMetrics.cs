using Diffuse.Randomness;
using static TorchSharp.torch;

namespace Diffuse.Evaluation.SampleQuality;

/// <summary>Mean and covariance of a set of feature vectors, in float64.</summary>
/// <param name="Mean">[F] mean.</param>
/// <param name="Covariance">[F, F] unbiased covariance.</param>
public sealed record GaussianStatistics(double[] Mean, double[,] Covariance)
{
    /// <summary>Fits the statistics of the rows of <paramref name="features"/> [N, F].</summary>
    public static GaussianStatistics Fit(Tensor features)
    {
        using var scope = NewDisposeScope();
        var f = features.to_type(ScalarType.Float64);
        if (f.dim() != 2 || f.shape[0] < 2) throw new DiffuseException($"feature statistics need at least two rows of [N, F] features; got shape [{string.Join(", ", f.shape)}].");
        var mean = f.mean(new long[] { 0 });
        var centred = f - mean;
        var cov = centred.t().matmul(centred) / (f.shape[0] - 1);
        int d = (int)f.shape[1];
        var covArray = new double[d, d];
        var flat = cov.contiguous().data<double>().ToArray();
        Buffer.BlockCopy(flat, 0, covArray, 0, flat.Length * sizeof(double));
        return new GaussianStatistics(mean.data<double>().ToArray(), covArray);
    }
}

/// <summary>Kernel inception distance: the mean of the unbiased MMD² over subsets, their spread, and its standard error.</summary>
/// <param name="Mean">Mean of the subset estimates.</param>
/// <param name="StdDev">
/// Standard deviation of the subset estimates: not an error bar when the sets are not much larger than a subset (the
/// subsets overlap; when both sets have at most one subset's rows it is 0).
/// </param>
/// <param name="StdError">
/// The standard error of one subset's estimate from the variance of a U-statistic of order 2 (Hoeffding 1948):
/// 4(m − 2)/(m(m − 1))·ζ₁ + 2/(m(m − 1))·ζ₂ for the pair kernel h = k(x,x′) + k(y,y′) − k(x,y′) − k(x′,y), with ζ₁
/// (the variance of a row's mean of h, less its own noise) and ζ₂ (the variance of h) estimated from the kernel
/// matrices; averaged over subsets, it is exact when the subsets are the whole sets and an upper bound otherwise.
/// </param>
public sealed record KidResult(double Mean, double StdDev, double StdError);

/// <summary>Improved precision and recall of a generated set against a real set.</summary>
/// <param name="Precision">Fraction of generated points inside the real manifold estimate.</param>
/// <param name="Recall">Fraction of real points inside the generated manifold estimate.</param>
public sealed record PrecisionRecall(double Precision, double Recall);

/// <summary>
/// Sample-quality metrics on feature vectors of a fixed network (ours or an external one). They are named for what
/// they are computed on: the Fréchet distance on Inception features is FID; on our own features it is not.
/// </summary>
public static class FeatureMetrics
{
    /// <summary>
    /// Fréchet distance between two Gaussians (Dowson and Landau 1982; Heusel et al. 2017, eq. 6):
    /// ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2·(Σ1^½·Σ2·Σ1^½)^½), with the matrix square roots from symmetric eigendecompositions.
    /// </summary>
    public static double FrechetDistance(GaussianStatistics a, GaussianStatistics b)
    {
        using var scope = NewDisposeScope();
        var m1 = tensor(a.Mean);
        var m2 = tensor(b.Mean);
        var s1 = tensor(a.Covariance);
        var s2 = tensor(b.Covariance);
        var root1 = SymmetricSqrt(s1);
        var inner = root1.matmul(s2).matmul(root1);
        inner = (inner + inner.t()) / 2;
        double traceSqrt = linalg.eigvalsh(inner).clamp_min(0).sqrt().sum().item<double>();
        double meanTerm = (m1 - m2).square().sum().item<double>();
        return meanTerm + s1.trace().item<double>() + s2.trace().item<double>() - 2 * traceSqrt;
    }

    /// <summary>Fréchet distance between the Gaussian fits of two feature sets [N, F] and [M, F].</summary>
    public static double FrechetDistance(Tensor a, Tensor b) => FrechetDistance(GaussianStatistics.Fit(a), GaussianStatistics.Fit(b));

    /// <summary>
    /// Kernel inception distance (Bińkowski et al. 2018, §3): the unbiased estimate of MMD² with the polynomial kernel
    /// k(x, y) = (xᵀy/F + 1)³, averaged over <paramref name="subsets"/> random subsets of <paramref name="subsetSize"/>
    /// rows of each set (seeded).
    /// </summary>
    public static KidResult KernelInceptionDistance(Tensor a, Tensor b, int subsets = 10, int subsetSize = 1000, long seed = 0)
    {
        using var scope = NewDisposeScope();
        var x = a.to_type(ScalarType.Float64);
        var y = b.to_type(ScalarType.Float64);
        long features = x.shape[1];
        int m = (int)Math.Min(subsetSize, Math.Min(x.shape[0], y.shape[0]));
        if (m < 3) throw new DiffuseException("KID needs at least three rows in each set.");
        ulong key = unchecked((ulong)seed), draw = 0;
        var estimates = new double[subsets];
        var errors = new double[subsets];
        for (int s = 0; s < subsets; s++)
        {
            using var inner = NewDisposeScope();
            var xs = x.index_select(0, tensor(Subset(key, ref draw, (int)x.shape[0], m)));
            var ys = y.index_select(0, tensor(Subset(key, ref draw, (int)y.shape[0], m)));
            var kxx = (xs.matmul(xs.t()) / features + 1).pow(3);
            var kyy = (ys.matmul(ys.t()) / features + 1).pow(3);
            var kxy = (xs.matmul(ys.t()) / features + 1).pow(3);
            double sxx = (kxx.sum().item<double>() - kxx.diagonal().sum().item<double>()) / (m * (m - 1.0));
            double syy = (kyy.sum().item<double>() - kyy.diagonal().sum().item<double>()) / (m * (m - 1.0));
            double sxy = kxy.sum().item<double>() / ((double)m * m);
            estimates[s] = sxx + syy - 2 * sxy;
            errors[s] = Math.Sqrt(UStatisticVariance(kxx + kyy - kxy - kxy.t(), m));
        }
        double mean = estimates.Average();
        double std = subsets > 1 ? Math.Sqrt(estimates.Sum(e => (e - mean) * (e - mean)) / (subsets - 1)) : 0;
        return new KidResult(mean, std, errors.Average());
    }

    /// <summary>
    /// The variance of the U-statistic of order 2 with the symmetric pair kernel <paramref name="h"/> [m, m] (its diagonal
    /// ignored): 4(m − 2)/(m(m − 1))·ζ₁ + 2/(m(m − 1))·ζ₂. ζ₂ is the variance of the off-diagonal entries; ζ₁ that of the
    /// row means, less the part their own averaging noise adds (ζ₂/(m − 1)), and at least 0, so that the estimate is
    /// neither inflated when ζ₁ vanishes (two samples of one distribution) nor short of it otherwise.
    /// </summary>
    private static double UStatisticVariance(Tensor h, int m)
    {
        using var scope = NewDisposeScope();
        var offDiagonal = h - diag(h.diagonal());
        var rowMeans = offDiagonal.sum(1) / (m - 1.0);
        double u = rowMeans.mean().item<double>();
        double zeta2 = Math.Max(0, (offDiagonal.square().sum().item<double>() / (m * (m - 1.0))) - u * u);
        double rowVariance = (rowMeans - u).square().sum().item<double>() / (m - 1.0);
        double zeta1 = Math.Max(0, rowVariance - zeta2 / (m - 1.0));
        return 4.0 * (m - 2) / (m * (m - 1.0)) * zeta1 + 2.0 / (m * (m - 1.0)) * zeta2;
    }

    /// <summary>
    /// Improved precision and recall (Kynkäänniemi et al. 2019, eqs. 1–3): each set's manifold is the union of balls
    /// around its points with radius the distance to the k-th nearest neighbour (k = 3 by default); precision is the
    /// fraction of generated points inside the real manifold, recall the fraction of real points inside the generated one.
    /// </summary>
    public static PrecisionRecall PrecisionAndRecall(Tensor real, Tensor generated, int k = 3)
    {
        using var scope = NewDisposeScope();
        var r = real.to_type(ScalarType.Float64);
        var g = generated.to_type(ScalarType.Float64);
        return new PrecisionRecall(Coverage(r, g, k), Coverage(g, r, k));
    }

    /// <summary>Fraction of rows whose predicted class (argmax of <paramref name="logits"/>) equals <paramref name="labels"/>.</summary>
    public static double Accuracy(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        return logits.argmax(1).eq(labels).to_type(ScalarType.Float64).mean().item<double>();
    }

    // Fraction of `query` rows inside the union of k-NN balls of `manifold` rows.
    private static double Coverage(Tensor manifold, Tensor query, int k)
    {
        if (manifold.shape[0] <= k) throw new DiffuseException($"precision and recall need more than k = {k} points per set.");
        var radii = KthNeighbourDistance(manifold, k);
        long inside = 0;
        const int block = 1024;
        for (long start = 0; start < query.shape[0]; start += block)
        {
            using var scope = NewDisposeScope();
            var q = query.narrow(0, start, Math.Min(block, query.shape[0] - start));
            var d = cdist(q, manifold);
            inside += (d <= radii.unsqueeze(0)).any(1).sum().item<long>();
        }
        return (double)inside / query.shape[0];
    }

    private static Tensor KthNeighbourDistance(Tensor x, int k)
    {
        var parts = new List<Tensor>();
        const int block = 1024;
        for (long start = 0; start < x.shape[0]; start += block)
        {
            var q = x.narrow(0, start, Math.Min(block, x.shape[0] - start));
            // The smallest distance is the point itself (0): the k-th neighbour is at sorted position k.
            parts.Add(cdist(q, x).topk(k + 1, dim: 1, largest: false).values.select(1, k));
        }
        return cat(parts, 0);
    }

    private static Tensor SymmetricSqrt(Tensor matrix)
    {
        var (values, vectors) = linalg.eigh((matrix + matrix.t()) / 2);
        return vectors.matmul(diag(values.clamp_min(0).sqrt())).matmul(vectors.t());
    }

    /// <summary>A uniformly random subset of m of n rows (partial Fisher–Yates), from consecutive draws of <see cref="StreamDomains.KernelDistanceSubsets"/>.</summary>
    private static long[] Subset(ulong seed, ref ulong draw, int n, int m)
    {
        var index = Enumerable.Range(0, n).ToArray();
        for (int i = 0; i < m; i++)
        {
            int j = i + SeededNoise.UniformInt(seed, StreamDomains.KernelDistanceSubsets, draw++, n - i);
            (index[i], index[j]) = (index[j], index[i]);
        }
        return index.Take(m).Select(i => (long)i).ToArray();
    }
}
