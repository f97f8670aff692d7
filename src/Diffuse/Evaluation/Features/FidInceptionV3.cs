using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Diffuse.Evaluation.Features;

/// <summary>
/// Inception-v3 (Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision", Fig. 5–7 and
/// Table 1) in the variant FID is defined on (Heusel et al. 2017): the TensorFlow graph
/// <c>inception-2015-12-05</c> as ported by pytorch-fid (<c>pt_inception-2015-12-05</c> weights), returning the
/// 2048-d average-pool features ("pool3"). Its state-dict keys are those of torchvision's <c>Inception3</c>
/// (<c>Conv2d_1a_3x3.conv.weight</c>, <c>Conv2d_1a_3x3.bn.running_mean</c>, <c>Mixed_5b.branch1x1.conv.weight</c>, …)
/// without the auxiliary classifier; the 1008-way <c>fc</c> layer of the pytorch-fid file is not part of the
/// feature network (<see cref="FeatureNetworks.Load"/> accepts and ignores it).
/// </summary>
/// <remarks>
/// <para>Architecture. Every convolution is a BasicConv2d: convolution without bias, batch normalisation with
/// ε = 0.001 (running statistics: the network is always in evaluation mode), ReLU. pytorch-fid's variant differs
/// from torchvision's in three places, reproduced here: the average-pool branch of the A, C and first E blocks
/// (<c>Mixed_5b–5d</c>, <c>Mixed_6b–6e</c>, <c>Mixed_7b</c>) averages over the in-image pixels only
/// (<c>count_include_pad = false</c>, as TensorFlow pools), and the last E block (<c>Mixed_7c</c>) max-pools in that
/// branch instead of averaging.</para>
/// <para>Input. Images in [−1, 1] (or uint8). pytorch-fid takes images in [0, 1], resizes them bilinearly to
/// 299×299 (align_corners = false, no antialiasing) and then maps them to [−1, 1] by 2x − 1; bilinear interpolation
/// commutes with that affine map (its weights sum to 1), so resizing images already in [−1, 1] gives the same network
/// input. Grey images are repeated to three channels, as pytorch-fid's <c>convert("RGB")</c> does. Images of
/// another size are resized to 299×299 whatever their size (pytorch-fid's default <c>resize_input</c>).</para>
/// <para>Cost. About 5.7 GFLOPs per image; on a CPU count seconds per dozen images.</para>
/// </remarks>
public sealed class FidInceptionV3 : Module<Tensor, Tensor>, IImageFeatureNetwork
{
    /// <summary>The input side the network runs at (images are resized to 299×299).</summary>
    public const int InputSize = 299;

    /// <summary>The length of the pool3 feature vector.</summary>
    public const int FeatureDimension = 2048;

    /// <summary>The ε of every batch normalisation, as in TensorFlow's graph and torchvision's BasicConv2d.</summary>
    public const double BatchNormEpsilon = 0.001;

    [ComponentName(Name = "Conv2d_1a_3x3")] private readonly BasicConv2d conv1a;
    [ComponentName(Name = "Conv2d_2a_3x3")] private readonly BasicConv2d conv2a;
    [ComponentName(Name = "Conv2d_2b_3x3")] private readonly BasicConv2d conv2b;
    [ComponentName(Name = "Conv2d_3b_1x1")] private readonly BasicConv2d conv3b;
    [ComponentName(Name = "Conv2d_4a_3x3")] private readonly BasicConv2d conv4a;
    [ComponentName(Name = "Mixed_5b")] private readonly InceptionA mixed5b;
    [ComponentName(Name = "Mixed_5c")] private readonly InceptionA mixed5c;
    [ComponentName(Name = "Mixed_5d")] private readonly InceptionA mixed5d;
    [ComponentName(Name = "Mixed_6a")] private readonly InceptionB mixed6a;
    [ComponentName(Name = "Mixed_6b")] private readonly InceptionC mixed6b;
    [ComponentName(Name = "Mixed_6c")] private readonly InceptionC mixed6c;
    [ComponentName(Name = "Mixed_6d")] private readonly InceptionC mixed6d;
    [ComponentName(Name = "Mixed_6e")] private readonly InceptionC mixed6e;
    [ComponentName(Name = "Mixed_7a")] private readonly InceptionD mixed7a;
    [ComponentName(Name = "Mixed_7b")] private readonly InceptionE mixed7b;
    [ComponentName(Name = "Mixed_7c")] private readonly InceptionE mixed7c;

    /// <summary>Builds the network with the current torch random state (load weights with <see cref="FeatureNetworks.Load"/>).</summary>
    public FidInceptionV3() : base("fid_inception_v3")
    {
        conv1a = new BasicConv2d(3, 32, (3, 3), stride: 2);
        conv2a = new BasicConv2d(32, 32, (3, 3));
        conv2b = new BasicConv2d(32, 64, (3, 3), padding: (1, 1));
        conv3b = new BasicConv2d(64, 80, (1, 1));
        conv4a = new BasicConv2d(80, 192, (3, 3));
        mixed5b = new InceptionA(192, poolFeatures: 32);
        mixed5c = new InceptionA(256, poolFeatures: 64);
        mixed5d = new InceptionA(288, poolFeatures: 64);
        mixed6a = new InceptionB(288);
        mixed6b = new InceptionC(768, channels7x7: 128);
        mixed6c = new InceptionC(768, channels7x7: 160);
        mixed6d = new InceptionC(768, channels7x7: 160);
        mixed6e = new InceptionC(768, channels7x7: 192);
        mixed7a = new InceptionD(768);
        mixed7b = new InceptionE(1280, maxPoolBranch: false);
        mixed7c = new InceptionE(2048, maxPoolBranch: true);
        RegisterComponents();
        eval();
    }

    /// <summary>"Inception-v3 (pytorch-fid)", or the name given when the weights were loaded.</summary>
    public string Name { get; init; } = "Inception-v3 (pytorch-fid)";

    /// <summary>True: the Fréchet distance on these features is FID (given pytorch-fid's weights; the loader checks the architecture, not the values).</summary>
    public bool IsFidInception => true;

    /// <summary>3: grey images are repeated to RGB.</summary>
    public int InputChannels => 3;

    /// <summary>299.</summary>
    public int InputHeight => InputSize;

    /// <summary>299.</summary>
    public int InputWidth => InputSize;

    /// <summary>2048.</summary>
    public int FeatureCount => FeatureDimension;

    /// <summary>0: the file's 1008 ImageNet logits are not the data set's classes, so no class accuracy is measured.</summary>
    public int ClassCount => 0;

    /// <summary>Images per batch in <see cref="Features"/> (an activation of 16 images at 147×147×64 is 88 MB).</summary>
    public int BatchSize { get; set; } = 16;

    /// <summary>The pool3 features [B, 2048] of a batch already at 3×299×299 in [−1, 1].</summary>
    public override Tensor forward(Tensor input)
    {
        // Each stage's output replaces the previous one at once: only two stem activations live at a time.
        Tensor x = input;
        void Step(Func<Tensor, Tensor> stage)
        {
            var next = stage(x);
            if (!ReferenceEquals(x, input)) x.Dispose();
            x = next;
        }
        Step(conv1a.call);                                         // 32 × 149 × 149
        Step(conv2a.call);                                         // 32 × 147 × 147
        Step(conv2b.call);                                         // 64 × 147 × 147
        Step(h => functional.max_pool2d(h, 3, 2));                 // 64 × 73 × 73
        Step(conv3b.call);                                         // 80 × 73 × 73
        Step(conv4a.call);                                         // 192 × 71 × 71
        Step(h => functional.max_pool2d(h, 3, 2));                 // 192 × 35 × 35
        Step(mixed5b.call);                                        // 256 × 35 × 35
        Step(mixed5c.call);                                        // 288 × 35 × 35
        Step(mixed5d.call);                                        // 288 × 35 × 35
        Step(mixed6a.call);                                        // 768 × 17 × 17
        Step(mixed6b.call);
        Step(mixed6c.call);
        Step(mixed6d.call);
        Step(mixed6e.call);                                        // 768 × 17 × 17
        Step(mixed7a.call);                                        // 1280 × 8 × 8
        Step(mixed7b.call);                                        // 2048 × 8 × 8
        Step(mixed7c.call);                                        // 2048 × 8 × 8
        Step(h => h.mean([2, 3]));                                 // 2048
        return x;
    }

    /// <summary>The pool3 features [N, 2048] of images in [−1, 1] or uint8 (any size, 1 or 3 channels), in batches of <see cref="BatchSize"/>.</summary>
    public Tensor Features(Tensor images) => Embed(images).Features;

    /// <summary>The pool3 features [N, 2048]; the logits are null (see <see cref="ClassCount"/>).</summary>
    public (Tensor Features, Tensor? Logits) Embed(Tensor images)
    {
        eval();
        return ImageFeatureBatches.Embed(this, images, BatchSize, batch => (forward(batch), null));
    }

    /// <summary>Convolution without bias, batch normalisation (ε = 0.001, running statistics), ReLU.</summary>
    internal sealed class BasicConv2d : Module<Tensor, Tensor>
    {
        [ComponentName(Name = "conv")] private readonly Conv2d conv;
        [ComponentName(Name = "bn")] private readonly BatchNorm2d bn;

        public BasicConv2d(long inChannels, long outChannels, (long, long) kernel, long stride = 1, (long, long)? padding = null)
            : base("basic_conv2d")
        {
            conv = Conv2d(inChannels, outChannels, kernel, stride: (stride, stride), padding: padding ?? (0, 0), bias: false);
            bn = BatchNorm2d(outChannels, eps: BatchNormEpsilon);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var convolved = conv.call(x);
            return bn.call(convolved).relu_();
        }
    }

    // TensorFlow's average pool over the in-image pixels only: pytorch-fid's patch of the A, C and first E blocks.
    private static Tensor AveragePool3x3(Tensor x) =>
        functional.avg_pool2d(x, kernel_size: 3, stride: 1, padding: 1, count_include_pad: false);

    private static Tensor Concat(params Tensor[] branches) => cat(branches, 1);

    /// <summary>Mixed_5b–5d: 1×1, 5×5, double 3×3 and pooled branches at 35×35.</summary>
    private sealed class InceptionA : Module<Tensor, Tensor>
    {
        [ComponentName(Name = "branch1x1")] private readonly BasicConv2d branch1x1;
        [ComponentName(Name = "branch5x5_1")] private readonly BasicConv2d branch5x5a;
        [ComponentName(Name = "branch5x5_2")] private readonly BasicConv2d branch5x5b;
        [ComponentName(Name = "branch3x3dbl_1")] private readonly BasicConv2d branch3x3dblA;
        [ComponentName(Name = "branch3x3dbl_2")] private readonly BasicConv2d branch3x3dblB;
        [ComponentName(Name = "branch3x3dbl_3")] private readonly BasicConv2d branch3x3dblC;
        [ComponentName(Name = "branch_pool")] private readonly BasicConv2d branchPool;

        public InceptionA(long inChannels, long poolFeatures) : base("inception_a")
        {
            branch1x1 = new BasicConv2d(inChannels, 64, (1, 1));
            branch5x5a = new BasicConv2d(inChannels, 48, (1, 1));
            branch5x5b = new BasicConv2d(48, 64, (5, 5), padding: (2, 2));
            branch3x3dblA = new BasicConv2d(inChannels, 64, (1, 1));
            branch3x3dblB = new BasicConv2d(64, 96, (3, 3), padding: (1, 1));
            branch3x3dblC = new BasicConv2d(96, 96, (3, 3), padding: (1, 1));
            branchPool = new BasicConv2d(inChannels, poolFeatures, (1, 1));
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            return Concat(
                branch1x1.call(x),
                branch5x5b.call(branch5x5a.call(x)),
                branch3x3dblC.call(branch3x3dblB.call(branch3x3dblA.call(x))),
                branchPool.call(AveragePool3x3(x))).MoveToOuterDisposeScope();
        }
    }

    /// <summary>Mixed_6a: the grid reduction 35×35 → 17×17.</summary>
    private sealed class InceptionB : Module<Tensor, Tensor>
    {
        [ComponentName(Name = "branch3x3")] private readonly BasicConv2d branch3x3;
        [ComponentName(Name = "branch3x3dbl_1")] private readonly BasicConv2d branch3x3dblA;
        [ComponentName(Name = "branch3x3dbl_2")] private readonly BasicConv2d branch3x3dblB;
        [ComponentName(Name = "branch3x3dbl_3")] private readonly BasicConv2d branch3x3dblC;

        public InceptionB(long inChannels) : base("inception_b")
        {
            branch3x3 = new BasicConv2d(inChannels, 384, (3, 3), stride: 2);
            branch3x3dblA = new BasicConv2d(inChannels, 64, (1, 1));
            branch3x3dblB = new BasicConv2d(64, 96, (3, 3), padding: (1, 1));
            branch3x3dblC = new BasicConv2d(96, 96, (3, 3), stride: 2);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            return Concat(
                branch3x3.call(x),
                branch3x3dblC.call(branch3x3dblB.call(branch3x3dblA.call(x))),
                functional.max_pool2d(x, 3, 2)).MoveToOuterDisposeScope();
        }
    }

    /// <summary>Mixed_6b–6e: factorised 7×7 branches (1×7 then 7×1) at 17×17.</summary>
    private sealed class InceptionC : Module<Tensor, Tensor>
    {
        [ComponentName(Name = "branch1x1")] private readonly BasicConv2d branch1x1;
        [ComponentName(Name = "branch7x7_1")] private readonly BasicConv2d branch7x7A;
        [ComponentName(Name = "branch7x7_2")] private readonly BasicConv2d branch7x7B;
        [ComponentName(Name = "branch7x7_3")] private readonly BasicConv2d branch7x7C;
        [ComponentName(Name = "branch7x7dbl_1")] private readonly BasicConv2d branch7x7dblA;
        [ComponentName(Name = "branch7x7dbl_2")] private readonly BasicConv2d branch7x7dblB;
        [ComponentName(Name = "branch7x7dbl_3")] private readonly BasicConv2d branch7x7dblC;
        [ComponentName(Name = "branch7x7dbl_4")] private readonly BasicConv2d branch7x7dblD;
        [ComponentName(Name = "branch7x7dbl_5")] private readonly BasicConv2d branch7x7dblE;
        [ComponentName(Name = "branch_pool")] private readonly BasicConv2d branchPool;

        public InceptionC(long inChannels, long channels7x7) : base("inception_c")
        {
            long c7 = channels7x7;
            branch1x1 = new BasicConv2d(inChannels, 192, (1, 1));
            branch7x7A = new BasicConv2d(inChannels, c7, (1, 1));
            branch7x7B = new BasicConv2d(c7, c7, (1, 7), padding: (0, 3));
            branch7x7C = new BasicConv2d(c7, 192, (7, 1), padding: (3, 0));
            branch7x7dblA = new BasicConv2d(inChannels, c7, (1, 1));
            branch7x7dblB = new BasicConv2d(c7, c7, (7, 1), padding: (3, 0));
            branch7x7dblC = new BasicConv2d(c7, c7, (1, 7), padding: (0, 3));
            branch7x7dblD = new BasicConv2d(c7, c7, (7, 1), padding: (3, 0));
            branch7x7dblE = new BasicConv2d(c7, 192, (1, 7), padding: (0, 3));
            branchPool = new BasicConv2d(inChannels, 192, (1, 1));
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            var double7x7 = branch7x7dblE.call(branch7x7dblD.call(branch7x7dblC.call(branch7x7dblB.call(branch7x7dblA.call(x)))));
            return Concat(
                branch1x1.call(x),
                branch7x7C.call(branch7x7B.call(branch7x7A.call(x))),
                double7x7,
                branchPool.call(AveragePool3x3(x))).MoveToOuterDisposeScope();
        }
    }

    /// <summary>Mixed_7a: the grid reduction 17×17 → 8×8.</summary>
    private sealed class InceptionD : Module<Tensor, Tensor>
    {
        [ComponentName(Name = "branch3x3_1")] private readonly BasicConv2d branch3x3A;
        [ComponentName(Name = "branch3x3_2")] private readonly BasicConv2d branch3x3B;
        [ComponentName(Name = "branch7x7x3_1")] private readonly BasicConv2d branch7x7x3A;
        [ComponentName(Name = "branch7x7x3_2")] private readonly BasicConv2d branch7x7x3B;
        [ComponentName(Name = "branch7x7x3_3")] private readonly BasicConv2d branch7x7x3C;
        [ComponentName(Name = "branch7x7x3_4")] private readonly BasicConv2d branch7x7x3D;

        public InceptionD(long inChannels) : base("inception_d")
        {
            branch3x3A = new BasicConv2d(inChannels, 192, (1, 1));
            branch3x3B = new BasicConv2d(192, 320, (3, 3), stride: 2);
            branch7x7x3A = new BasicConv2d(inChannels, 192, (1, 1));
            branch7x7x3B = new BasicConv2d(192, 192, (1, 7), padding: (0, 3));
            branch7x7x3C = new BasicConv2d(192, 192, (7, 1), padding: (3, 0));
            branch7x7x3D = new BasicConv2d(192, 192, (3, 3), stride: 2);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            return Concat(
                branch3x3B.call(branch3x3A.call(x)),
                branch7x7x3D.call(branch7x7x3C.call(branch7x7x3B.call(branch7x7x3A.call(x)))),
                functional.max_pool2d(x, 3, 2)).MoveToOuterDisposeScope();
        }
    }

    /// <summary>Mixed_7b and 7c: expanded filter banks (1×3 and 3×1 side by side) at 8×8.</summary>
    private sealed class InceptionE : Module<Tensor, Tensor>
    {
        [ComponentName(Name = "branch1x1")] private readonly BasicConv2d branch1x1;
        [ComponentName(Name = "branch3x3_1")] private readonly BasicConv2d branch3x3;
        [ComponentName(Name = "branch3x3_2a")] private readonly BasicConv2d branch3x3Wide;
        [ComponentName(Name = "branch3x3_2b")] private readonly BasicConv2d branch3x3Tall;
        [ComponentName(Name = "branch3x3dbl_1")] private readonly BasicConv2d branch3x3dblA;
        [ComponentName(Name = "branch3x3dbl_2")] private readonly BasicConv2d branch3x3dblB;
        [ComponentName(Name = "branch3x3dbl_3a")] private readonly BasicConv2d branch3x3dblWide;
        [ComponentName(Name = "branch3x3dbl_3b")] private readonly BasicConv2d branch3x3dblTall;
        [ComponentName(Name = "branch_pool")] private readonly BasicConv2d branchPool;
        private readonly bool maxPoolBranch;

        // maxPoolBranch: the last block of pytorch-fid's graph max-pools in its pool branch (the others average).
        public InceptionE(long inChannels, bool maxPoolBranch) : base("inception_e")
        {
            this.maxPoolBranch = maxPoolBranch;
            branch1x1 = new BasicConv2d(inChannels, 320, (1, 1));
            branch3x3 = new BasicConv2d(inChannels, 384, (1, 1));
            branch3x3Wide = new BasicConv2d(384, 384, (1, 3), padding: (0, 1));
            branch3x3Tall = new BasicConv2d(384, 384, (3, 1), padding: (1, 0));
            branch3x3dblA = new BasicConv2d(inChannels, 448, (1, 1));
            branch3x3dblB = new BasicConv2d(448, 384, (3, 3), padding: (1, 1));
            branch3x3dblWide = new BasicConv2d(384, 384, (1, 3), padding: (0, 1));
            branch3x3dblTall = new BasicConv2d(384, 384, (3, 1), padding: (1, 0));
            branchPool = new BasicConv2d(inChannels, 192, (1, 1));
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            var single = branch3x3.call(x);
            var dbl = branch3x3dblB.call(branch3x3dblA.call(x));
            var pooled = maxPoolBranch ? functional.max_pool2d(x, 3, 1, 1) : AveragePool3x3(x);
            return Concat(
                branch1x1.call(x),
                branch3x3Wide.call(single), branch3x3Tall.call(single),
                branch3x3dblWide.call(dbl), branch3x3dblTall.call(dbl),
                branchPool.call(pooled)).MoveToOuterDisposeScope();
        }
    }
}
